package client

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ciplat/ciplat/api"
	"github.com/ciplat/ciplat/drivers"
)

// recordingPush is a PushLogs stand-in that records every batch it accepts.
type recordingPush struct {
	mu      sync.Mutex
	batches [][]*api.LogEntry
	release chan struct{} // when non-nil, pushes wait for it to close
	err     error         // returned instead of accepting
}

func (p *recordingPush) push(ctx context.Context, es []*api.LogEntry) error {
	if p.release != nil {
		select {
		case <-p.release:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if p.err != nil {
		return p.err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.batches = append(p.batches, slices.Clone(es))
	return nil
}

func (p *recordingPush) lines() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for _, b := range p.batches {
		for _, e := range b {
			out = append(out, e.Line)
		}
	}
	return out
}

func newTestShipper(t *testing.T, push func(context.Context, []*api.LogEntry) error) *logShipper {
	c := &Client{log: slog.New(slog.DiscardHandler), now: time.Now, after: time.After}
	alloc := &api.Allocation{ID: "a1", JobID: "j1", Attempt: 2}
	job := &api.Job{ID: "j1", Name: "build"}
	s := newLogShipper(c, push, alloc, job)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		s.close(ctx)
	})
	return s
}

func TestLogShipper_BatchesInOrder(t *testing.T) {
	p := &recordingPush{}
	s := newTestShipper(t, p.push)
	sink := s.sink("build")
	var want []string
	for i := range 1000 {
		line := fmt.Sprintf("line %d", i)
		want = append(want, line)
		sink.Emit(drivers.LogLine{Stream: drivers.Stdout, Line: line})
	}
	if err := s.flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := p.lines(); !slices.Equal(got, want) {
		t.Fatalf("got %d lines, want %d in order", len(got), len(want))
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, b := range p.batches {
		if len(b) > logBatchSize {
			t.Fatalf("batch of %d entries, want at most %d", len(b), logBatchSize)
		}
	}
	e := p.batches[0][0]
	if e.JobID != "j1" || e.JobName != "build" || e.Step != "build" || e.Attempt != 2 || e.Stream != "stdout" || e.Time.IsZero() {
		t.Fatalf("entry %+v", e)
	}
}

func TestLogShipper_SendsWithinInterval(t *testing.T) {
	p := &recordingPush{}
	s := newTestShipper(t, p.push)
	s.sink("s").Emit(drivers.LogLine{Line: "only"})
	// No flush: a lone line leaves after logFlushInterval on its own.
	s.mu.Lock()
	target := s.queued
	s.mu.Unlock()
	deadline := time.After(5 * time.Second)
	for {
		s.mu.Lock()
		done, ch := s.shipped >= target, s.progress
		s.mu.Unlock()
		if done {
			break
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatal("a single line was never sent")
		}
	}
	if got := p.lines(); !slices.Equal(got, []string{"only"}) {
		t.Fatalf("got %q", got)
	}
}

func TestLogShipper_DropsWhenServersAreGone(t *testing.T) {
	p := &recordingPush{release: make(chan struct{})}
	s := newTestShipper(t, p.push)
	sink := s.sink("s")
	// The servers hang: Emit must neither block nor grow without bound.
	total := logBufferMax + 10
	for i := range total {
		sink.Emit(drivers.LogLine{Line: fmt.Sprintf("l%d", i)})
	}
	close(p.release)
	if err := s.flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := p.lines()
	if len(got) != logBufferMax+1 {
		t.Fatalf("got %d lines, want the %d buffered and one warning", len(got), logBufferMax)
	}
	if last := got[len(got)-1]; !strings.Contains(last, "10 log lines were dropped") {
		t.Fatalf("last line %q: want the drop warning", last)
	}
	if got[0] != "l0" || got[logBufferMax-1] != fmt.Sprintf("l%d", logBufferMax-1) {
		t.Fatalf("the oldest lines must be kept, in order")
	}
}

func TestLogShipper_RefusedBatchDoesNotHang(t *testing.T) {
	p := &recordingPush{err: &api.Error{StatusCode: 400, Message: "bad entry"}}
	s := newTestShipper(t, p.push)
	s.sink("s").Emit(drivers.LogLine{Line: "x"})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.flush(ctx); err != nil {
		t.Fatalf("flush: %v", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lost != 1 {
		t.Fatalf("lost %d, want 1", s.lost)
	}
}

func TestLogShipper_ByteBudget(t *testing.T) {
	line := strings.Repeat("z", 1000)
	cost := entryCost("s", line)
	for _, tc := range []struct {
		name   string
		budget int64
		kept   int
	}{
		{"at the limit", 10 * cost, 10},
		{"one byte short", 10*cost - 1, 9},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &recordingPush{release: make(chan struct{})}
			c := &Client{cfg: Config{LogBufferBytes: tc.budget}, log: slog.New(slog.DiscardHandler), now: time.Now, after: time.After}
			s := newLogShipper(c, p.push, &api.Allocation{ID: "a1", JobID: "j1", Attempt: 1}, &api.Job{ID: "j1", Name: "build"})
			var release sync.Once
			defer func() {
				// On failure too: let the hung push go, then stop.
				release.Do(func() { close(p.release) })
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				s.close(ctx)
			}()
			sink := s.sink("s")
			// The servers hang: 15 lines of 1 KB against a budget of about 10.
			for range 15 {
				sink.Emit(drivers.LogLine{Line: line})
			}
			s.mu.Lock()
			held, n := s.bufBytes, len(s.buf)
			s.mu.Unlock()
			if n != tc.kept || held > tc.budget {
				t.Fatalf("buffer holds %d lines, %d bytes; want %d lines within %d bytes", n, held, tc.kept, tc.budget)
			}
			release.Do(func() { close(p.release) })
			if err := s.flush(context.Background()); err != nil {
				t.Fatal(err)
			}
			got := p.lines()
			want := fmt.Sprintf("%d log lines were dropped", 15-tc.kept)
			if len(got) != tc.kept+1 || !strings.Contains(got[len(got)-1], want) {
				t.Fatalf("shipped %d lines, last %q; want %d and a warning %q", len(got), got[len(got)-1], tc.kept, want)
			}
			s.mu.Lock()
			defer s.mu.Unlock()
			if s.bufBytes != 0 || s.buf != nil {
				t.Fatalf("after the flush the buffer holds %d bytes", s.bufBytes)
			}
		})
	}
}
