package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/go-memdb"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ciplat/ciplat/fsm/state"
	"github.com/ciplat/ciplat/fsm/structs"
)

// publishBatch is how many events the publisher sends before it waits for
// their acknowledgements.
const publishBatch = 512

// ackTimeout bounds the wait for one batch's acknowledgements.
const ackTimeout = 30 * time.Second

// ourSubjects are the subject trees the FSM's events use; the stream
// (domain.>) may also hold messages other tools published.
var ourSubjects = []string{"domain.pipeline.>", "domain.scheduler.>", "domain.provider.>"}

// Position is an event's place in the order of all events.
type Position struct {
	Index uint64 `json:"index"`
	Seq   uint64 `json:"seq"`
}

// After reports whether p comes after o.
func (p Position) After(o Position) bool {
	return p.Index > o.Index || (p.Index == o.Index && p.Seq > o.Seq)
}

// PublisherStatus says how far the publisher got.
type PublisherStatus struct {
	Running    bool     `json:"running"`
	Last       Position `json:"last"`
	Published  uint64   `json:"published"`
	Duplicates uint64   `json:"duplicates"`
	Errors     uint64   `json:"errors"`
	LastError  string   `json:"last_error,omitempty"`
}

// Publisher copies the events the FSM committed into CIPLAT_EVENTS, in
// (Raft index, seq) order, each with Nats-Msg-Id "<index>-<seq>" and the
// Ciplat-Index header. Only the leader runs it. When it starts (and after
// any error) it reads the last event in the stream and resumes right after
// it, so a new leader neither loses nor repeats events; each publish also
// carries Nats-Expected-Last-Msg-Id, so the stream refuses a message that
// would land out of order and the publisher resumes instead.
//
// Concurrency: Run is called by one goroutine at a time; Status from any.
type Publisher struct {
	bus   *Bus
	state func() *state.StateStore
	log   *slog.Logger
	now   func() time.Time

	mu     sync.Mutex
	status PublisherStatus
	// notify is closed and replaced after every acknowledged batch.
	notify chan struct{}
}

// NewPublisher returns a publisher of the events in the store st returns
// (called for each read: a snapshot restore replaces the store).
func (b *Bus) NewPublisher(st func() *state.StateStore) *Publisher {
	return &Publisher{bus: b, state: st, log: b.cfg.Logger.With("component", "event-publisher"), now: time.Now,
		notify: make(chan struct{})}
}

// Status returns what the publisher did so far.
func (p *Publisher) Status() PublisherStatus {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.status
}

// Published returns a channel closed when the next batch is acknowledged.
func (p *Publisher) Published() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.notify
}

// Run publishes until ctx ends. Errors (NATS down, a stream leader
// change, an out-of-order refusal) are logged and followed by a resume
// from the stream after a short backoff.
func (p *Publisher) Run(ctx context.Context) {
	p.setRunning(true)
	defer p.setRunning(false)
	wait := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := p.runOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		p.fail(err)
		p.log.Warn("publishing events to NATS failed; resuming from the stream", "err", err, "in", wait)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		wait = min(wait*2, 5*time.Second)
	}
}

func (p *Publisher) runOnce(ctx context.Context) error {
	sctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	stream, err := p.bus.EnsureStream(sctx)
	if err != nil {
		cancel()
		return err
	}
	pos, lastID, err := p.resume(sctx, stream)
	cancel()
	if err != nil {
		return err
	}
	p.log.Info("publishing events", "stream", StreamName, "after", fmt.Sprintf("%d-%d", pos.Index, pos.Seq))
	return p.publishFrom(ctx, pos, lastID)
}

// resume finds where to start: right after the newest event of ours in the
// stream. lastID is the Nats-Msg-Id of the stream's last message, which the
// first publish expects ("" when the stream is empty or the last message
// has no ID).
func (p *Publisher) resume(ctx context.Context, stream jetstream.Stream) (Position, string, error) {
	info, err := stream.Info(ctx)
	if err != nil {
		return Position{}, "", fmt.Errorf("stream info: %w", err)
	}
	st := info.State
	if st.LastSeq == 0 {
		return Position{}, "", nil // never published: start with the oldest event kept
	}
	if st.Msgs == 0 {
		// Every message has expired (MaxAge): nothing says which event was
		// last. Resume with the events newer than the last message's time
		// less the duplicate window; the window drops any repeat.
		return p.positionBefore(st.LastTime.Add(-p.bus.cfg.Duplicates)), "", nil
	}
	last, err := stream.GetMsg(ctx, st.LastSeq)
	if err != nil {
		return Position{}, "", fmt.Errorf("read the last message of %s (seq %d): %w", StreamName, st.LastSeq, err)
	}
	lastID := last.Header.Get(jetstream.MsgIDHeader)
	if pos, ok := positionOf(last); ok {
		return pos, lastID, nil
	}
	// The last message is not ours (a tool published on domain.>): find
	// our newest by subject.
	var best Position
	for _, subj := range ourSubjects {
		m, err := stream.GetLastMsgForSubject(ctx, subj)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return Position{}, "", fmt.Errorf("read the last %s message: %w", subj, err)
		}
		if pos, ok := positionOf(m); ok && pos.After(best) {
			best = pos
		}
	}
	return best, lastID, nil
}

// positionOf reads an event's position from its message headers.
func positionOf(m *jetstream.RawStreamMsg) (Position, bool) {
	if m == nil {
		return Position{}, false
	}
	idx, err := strconv.ParseUint(m.Header.Get(HeaderIndex), 10, 64)
	if err != nil {
		return Position{}, false
	}
	seq, err := strconv.ParseUint(m.Header.Get(HeaderSeq), 10, 64)
	if err != nil {
		if _, s, err := structs.ParseEventID(m.Header.Get(jetstream.MsgIDHeader)); err == nil {
			seq = s
		}
	}
	return Position{Index: idx, Seq: seq}, true
}

// positionBefore is the position just before the first kept event at or
// after t.
func (p *Publisher) positionBefore(t time.Time) Position {
	evs, err := p.state().EventsAfter(nil, 0, 0, 0)
	if err != nil {
		return Position{}
	}
	var pos Position
	for _, e := range evs {
		if !e.Time.Before(t) {
			break
		}
		pos = Position{Index: e.Index, Seq: e.Seq}
	}
	return pos
}

// publishFrom publishes every event after pos, then waits for more.
func (p *Publisher) publishFrom(ctx context.Context, pos Position, lastID string) error {
	var seen uint64 // the events table index last read
	warned := false
	for ctx.Err() == nil {
		var evs []*structs.Event
		var pruned uint64
		idx, err := p.state().BlockingQuery(ctx, seen, 5*time.Minute, func(ws memdb.WatchSet, s *state.StateStore) (uint64, error) {
			var err error
			evs, err = s.EventsAfter(ws, pos.Index, pos.Seq, publishBatch)
			pruned = s.EventsPrunedThrough()
			idx := s.Index(state.TableEvents)
			if len(evs) > 0 && idx <= seen {
				idx = seen + 1 // events are waiting: answer now
			}
			return idx, err
		})
		if err != nil {
			return err
		}
		seen = idx
		if len(evs) == 0 {
			continue
		}
		if pruned > pos.Index && !warned {
			p.log.Warn("events were pruned from the state before they were published; the stream has a gap",
				"published_through", pos.Index, "pruned_through", pruned)
			warned = true
		}
		if lastID, err = p.publish(ctx, evs, lastID); err != nil {
			return err
		}
		last := evs[len(evs)-1]
		pos = Position{Index: last.Index, Seq: last.Seq}
	}
	return ctx.Err()
}

// publish sends one batch asynchronously and waits for every ack.
func (p *Publisher) publish(ctx context.Context, evs []*structs.Event, lastID string) (string, error) {
	js := p.bus.js
	futures := make([]jetstream.PubAckFuture, 0, len(evs))
	prev := lastID
	for _, e := range evs {
		data, err := json.Marshal(e)
		if err != nil {
			return lastID, fmt.Errorf("encode event %s: %w", e.ID(), err)
		}
		msg := &nats.Msg{Subject: e.Topic, Data: data, Header: nats.Header{}}
		msg.Header.Set(HeaderIndex, strconv.FormatUint(e.Index, 10))
		msg.Header.Set(HeaderSeq, strconv.FormatUint(e.Seq, 10))
		opts := []jetstream.PublishOpt{jetstream.WithMsgID(e.ID())}
		if prev != "" {
			opts = append(opts, jetstream.WithExpectLastMsgID(prev))
		}
		f, err := js.PublishMsgAsync(msg, opts...)
		if err != nil {
			p.drain(futures)
			return lastID, fmt.Errorf("publish event %s: %w", e.ID(), err)
		}
		futures = append(futures, f)
		prev = e.ID()
	}
	timeout := time.NewTimer(ackTimeout)
	defer timeout.Stop()
	var published, dups uint64
	defer func() { p.acked(evs, published, dups) }()
	for i, f := range futures {
		select {
		case ack := <-f.Ok():
			if ack.Duplicate {
				dups++
			}
			published++
			lastID = evs[i].ID()
		case err := <-f.Err():
			p.drain(futures[i+1:])
			return lastID, fmt.Errorf("event %s refused: %w", evs[i].ID(), err)
		case <-ctx.Done():
			return lastID, ctx.Err()
		case <-timeout.C:
			return lastID, fmt.Errorf("no acknowledgement for event %s within %s", evs[i].ID(), ackTimeout)
		}
	}
	return lastID, nil
}

// drain waits briefly for outstanding publishes so a resume reads the
// stream after them.
func (p *Publisher) drain(futures []jetstream.PubAckFuture) {
	t := time.NewTimer(5 * time.Second)
	defer t.Stop()
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			_ = err // the resume that follows reads the stream as it is
		case <-t.C:
			return
		}
	}
}

func (p *Publisher) acked(evs []*structs.Event, n, dups uint64) {
	if n == 0 {
		return
	}
	last := evs[n-1]
	p.mu.Lock()
	p.status.Last = Position{Index: last.Index, Seq: last.Seq}
	p.status.Published += n - dups
	p.status.Duplicates += dups
	close(p.notify)
	p.notify = make(chan struct{})
	p.mu.Unlock()
}

func (p *Publisher) fail(err error) {
	p.mu.Lock()
	p.status.Errors++
	p.status.LastError = err.Error()
	p.mu.Unlock()
}

func (p *Publisher) setRunning(v bool) {
	p.mu.Lock()
	p.status.Running = v
	p.mu.Unlock()
}
