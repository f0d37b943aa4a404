package client

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/ciplat/ciplat/api"
	"github.com/ciplat/ciplat/drivers"
)

// Log shipping limits.
const (
	logBatchSize     = 256 // entries per PushLogs call, and the size that triggers a send
	logFlushInterval = 20 * time.Millisecond
	logBufferMax     = 16384            // entries held while the servers are slow or unreachable
	logEntryOverhead = 128              // bytes an entry costs beside its line and step name
	logLineMax       = 64 * 1024        // bytes per line; longer lines are cut
	logFlushTimeout  = 30 * time.Second // how long a step end waits for its logs
)

// DefaultLogBufferBytes is the byte budget of one allocation's log buffer
// (Config.LogBufferBytes).
const DefaultLogBufferBytes = 8 << 20

// logShipper ships one allocation's output lines to the servers, in order, in
// batches: a batch leaves when logBatchSize entries are waiting, when
// logFlushInterval has passed since the oldest waiting entry arrived, or at
// once on flush. A failed push is retried (same batch, so order holds) with
// backoff; a batch the servers refuse outright (4xx) is dropped and logged.
//
// Lifecycle: newLogShipper starts its goroutine; sink(step) gives the driver
// a LogSink per step; flush waits until everything emitted so far has been
// acknowledged; close flushes (bounded by its ctx), stops the goroutine and
// counts what could not be sent.
//
// Concurrency: Emit on any sink is safe from many goroutines and never blocks
// on the network: it appends to a bounded buffer under a mutex. The buffer
// is bounded twice: logBufferMax entries and maxBytes bytes (each entry
// costs its line, its step name and logEntryOverhead). When either is
// reached (servers unreachable for long), new lines are dropped and counted
// (the oldest are kept: they are what a reader needs first, and a batch in
// flight holds them), and a warning line saying how many were lost is
// inserted where the gap is, once there is room again. Emit never blocks:
// backpressure would stall the step's output pipe and so the build. flush and close are called by the runner
// goroutine only.
type logShipper struct {
	push  func(context.Context, []*api.LogEntry) error
	log   *slog.Logger
	job   *api.Job
	alloc *api.Allocation
	now   func() time.Time
	after func(time.Duration) <-chan time.Time

	ctx    context.Context // ends the goroutine's pushes; cancelled by close
	cancel context.CancelFunc
	done   chan struct{}
	wake   chan struct{} // cap 1: a full batch or a flush is waiting

	maxBytes int64 // byte budget of buf

	mu       sync.Mutex
	buf      []*api.LogEntry // emitted, not yet acknowledged; buf[0] is the oldest
	bufBytes int64           // entryCost of buf's entries
	queued   uint64          // entries ever appended to buf
	shipped  uint64          // entries acknowledged or discarded
	dropped  int             // lines dropped since the last warning line
	lost     int             // lines dropped or discarded in total
	urgent   bool            // a flush is waiting: send without the interval
	lastStep string          // step of the latest line, for a drop warning
	progress chan struct{}   // closed and replaced whenever shipped grows
}

// newLogShipper starts a shipper that sends with push (api.Client.PushLogs).
func newLogShipper(c *Client, push func(context.Context, []*api.LogEntry) error, alloc *api.Allocation, job *api.Job) *logShipper {
	ctx, cancel := context.WithCancel(context.Background())
	maxBytes := c.cfg.LogBufferBytes
	if maxBytes <= 0 {
		maxBytes = DefaultLogBufferBytes
	}
	s := &logShipper{
		push:     push,
		log:      c.log.With("alloc_id", alloc.ID, "job_id", job.ID),
		job:      job,
		alloc:    alloc,
		now:      c.now,
		after:    c.after,
		maxBytes: maxBytes,
		ctx:      ctx,
		cancel:   cancel,
		done:     make(chan struct{}),
		wake:     make(chan struct{}, 1),
		progress: make(chan struct{}),
	}
	go s.loop()
	return s
}

// sink returns the LogSink for one step.
func (s *logShipper) sink(step string) drivers.LogSink {
	return drivers.LogSinkFunc(func(l drivers.LogLine) { s.emit(step, l) })
}

func (s *logShipper) entry(step string, stream drivers.Stream, t time.Time, line string) *api.LogEntry {
	if t.IsZero() {
		t = s.now()
	}
	if stream == "" {
		stream = drivers.Stdout
	}
	return &api.LogEntry{
		JobID:   s.job.ID,
		JobName: s.job.Name,
		Step:    step,
		Attempt: s.alloc.Attempt,
		Stream:  string(stream),
		Time:    t,
		Line:    line,
	}
}

func (s *logShipper) emit(step string, l drivers.LogLine) {
	line := l.Line
	if len(line) > logLineMax {
		line = line[:logLineMax] + " [line truncated by ciplat]"
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lastStep = step
	if len(s.buf) >= logBufferMax || s.bufBytes+entryCost(step, line) > s.maxBytes {
		s.dropped++
		s.lost++
		return
	}
	if s.dropped > 0 {
		s.appendLocked(s.entry(step, drivers.Stderr, s.now(), s.dropWarning()))
	}
	s.appendLocked(s.entry(step, l.Stream, l.Time, line))
}

func (s *logShipper) dropWarning() string {
	n := s.dropped
	s.dropped = 0
	return fmt.Sprintf("ciplat: %d log lines were dropped here: the servers were unreachable and the client's log buffer (%d lines, %d bytes) was full", n, logBufferMax, s.maxBytes)
}

// entryCost is what one buffered entry counts against the byte budget.
func entryCost(step, line string) int64 {
	return int64(len(line) + len(step) + logEntryOverhead)
}

func (s *logShipper) appendLocked(e *api.LogEntry) {
	s.buf = append(s.buf, e)
	s.bufBytes += entryCost(e.Step, e.Line)
	s.queued++
	// Wake the loop for the first line (it starts the interval) and for a
	// full batch (it sends at once).
	if len(s.buf) == 1 || len(s.buf) == logBatchSize {
		s.signal()
	}
}

func (s *logShipper) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// flush returns once every line emitted before the call has been shipped (or
// refused by the servers), or ctx's error.
func (s *logShipper) flush(ctx context.Context) error {
	s.mu.Lock()
	if s.dropped > 0 {
		// Say where lines went missing before the step's end is reported.
		s.appendLocked(s.entry(s.lastStep, drivers.Stderr, s.now(), s.dropWarning()))
	}
	target := s.queued
	s.urgent = true
	s.mu.Unlock()
	s.signal()
	for {
		s.mu.Lock()
		if s.shipped >= target {
			s.mu.Unlock()
			return nil
		}
		p := s.progress
		s.mu.Unlock()
		select {
		case <-p:
		case <-ctx.Done():
			return ctx.Err()
		case <-s.done:
			return context.Canceled
		}
	}
}

// close flushes within ctx, stops the shipper and logs how many lines never
// reached the servers. It returns once the goroutine has exited.
func (s *logShipper) close(ctx context.Context) {
	err := s.flush(ctx)
	s.cancel()
	<-s.done
	s.mu.Lock()
	lost := s.lost + len(s.buf) + s.dropped
	s.mu.Unlock()
	if lost > 0 {
		s.log.Warn("log lines were lost", "lines", lost, "err", err)
	}
}

// loop sends batches until close.
func (s *logShipper) loop() {
	defer close(s.done)
	b := newBackoff(50*time.Millisecond, 2*time.Second)
	for {
		s.mu.Lock()
		n, urgent := len(s.buf), s.urgent
		s.mu.Unlock()
		switch {
		case n == 0:
			select {
			case <-s.wake:
			case <-s.ctx.Done():
				return
			}
			continue
		case n < logBatchSize && !urgent:
			// Let a few more lines join the batch.
			select {
			case <-s.wake:
			case <-s.after(logFlushInterval):
			case <-s.ctx.Done():
				return
			}
		}
		s.mu.Lock()
		batch := s.buf[:min(len(s.buf), logBatchSize)]
		s.mu.Unlock()
		err := s.push(s.ctx, batch)
		if err != nil && !permanent(err) {
			if s.ctx.Err() != nil {
				return
			}
			d := retryAfter(err, b.next())
			s.log.Warn("pushing logs failed; retrying", "err", err, "in", d.Round(time.Millisecond))
			select {
			case <-s.after(d):
			case <-s.ctx.Done():
				return
			}
			continue
		}
		if err != nil {
			s.log.Error("servers refused log lines; dropping them", "lines", len(batch), "err", err)
		}
		b.reset()
		s.mu.Lock()
		if err != nil {
			s.lost += len(batch)
		}
		n = len(batch)
		for _, e := range batch {
			s.bufBytes -= entryCost(e.Step, e.Line)
		}
		// Let the shipped entries go: the backing array outlives them.
		clear(s.buf[:n])
		s.buf = s.buf[n:]
		if len(s.buf) == 0 {
			s.buf = nil // let the backing array go
			s.urgent = false
		}
		s.shipped += uint64(n)
		close(s.progress)
		s.progress = make(chan struct{})
		s.mu.Unlock()
	}
}
