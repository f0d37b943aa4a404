// Package broker is the leader's evaluation broker: it holds the
// evaluations waiting for a scheduler worker (ready by priority then FIFO,
// delayed until their WaitUntil, handed out until acked, redelivered after
// a timeout, failed past a delivery limit) and counts what it holds.
//
// It owns only that queue. It knows nothing of Raft, state or the server:
// the server constructs one with New (a clock and a Config), enables it
// while it leads, runs RunDelayed and RunTimeouts on the leader, feeds it
// from state, and records failed evaluations through Raft. The broker may
// import the standard library and fsm/structs only (depguard in
// .golangci.yml: no server package).
//
// Concurrency: every method of Broker is safe for concurrent use.
package broker

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/ciplat/ciplat/fsm/structs"
)

// Config bounds the evaluation broker. Zero values take the defaults
// noted.
type Config struct {
	// DeliveryLimit is how often an evaluation is handed out (nacked or
	// timed out in between) before it fails: the leader records it failed,
	// with the reason, and retries its job after FailedEvalFollowUp.
	// Default 5.
	DeliveryLimit int
	// RedeliveryTimeout is how long a worker may hold an evaluation without
	// acking or nacking it before the broker hands it out again (the
	// worker is presumed stuck). Default 30s.
	RedeliveryTimeout time.Duration
	// MaxEvals bounds what the broker holds (ready, delayed and handed
	// out). A full broker takes no more: the rest stay pending in state and
	// are fed in as room frees, and submits get 429. Default 10,000.
	MaxEvals int
}

// Broker defaults.
const (
	DefaultDeliveryLimit     = 5
	DefaultRedeliveryTimeout = 30 * time.Second
	DefaultMaxEvals          = 10_000
)

func (c Config) withDefaults() Config {
	if c.DeliveryLimit <= 0 {
		c.DeliveryLimit = DefaultDeliveryLimit
	}
	if c.RedeliveryTimeout <= 0 {
		c.RedeliveryTimeout = DefaultRedeliveryTimeout
	}
	if c.MaxEvals <= 0 {
		c.MaxEvals = DefaultMaxEvals
	}
	return c
}

// Errors of Ack and Nack.
var (
	// ErrNotOutstanding: the evaluation is not handed out (acked already,
	// or the broker was disabled).
	ErrNotOutstanding = errors.New("evaluation is not outstanding")
	// ErrTokenMismatch: the evaluation was handed out again since (the
	// redelivery timeout passed); the late worker's verdict is ignored.
	ErrTokenMismatch = errors.New("evaluation token does not match: it was redelivered")
)

// Broker hands evaluations to scheduler workers: highest priority
// first, FIFO (by Raft create index) within a priority, and never before an
// evaluation's WaitUntil. Delivery is at least once: a handed-out
// evaluation is outstanding until its worker acks it (done) or nacks it
// (ready again at once); one held longer than RedeliveryTimeout is handed
// out again, and a late Ack or Nack with the old token is refused. After
// DeliveryLimit deliveries an evaluation fails: the broker keeps it aside
// (TakeFailed) until the leader has recorded it failed through Raft, and
// refuses to take it again meanwhile.
//
// The broker is bounded by MaxEvals; Enqueue refuses more and Room wakes
// whoever must offer them again. It lives on the leader only:
// SetEnabled(false) drops everything, and the new leader rebuilds the queue
// from state. Time comes from the injected clock. All methods are safe for
// concurrent use; the gauges in Metrics are read without the lock.
type Broker struct {
	now func() time.Time
	cfg Config
	m   brokerMetrics

	mu      sync.Mutex
	enabled bool
	// held is every evaluation the broker holds, by ID: ready, delayed or
	// outstanding.
	held      map[string]*heldEval
	ready     evalHeap
	delayed   delayHeap
	unacked   map[string]*heldEval
	nextToken uint64
	// failed are evaluations past the delivery limit not yet taken by the
	// leader; failing holds their IDs until the leader says they are
	// recorded (FailedRecorded).
	failed  []*FailedEval
	failing map[string]bool
	// refused is set when Enqueue turned an evaluation away for lack of
	// room; the next evaluation to leave then closes room.
	refused bool
	room    chan struct{}
	// wake is closed and replaced whenever ready gains an item or the
	// broker is disabled.
	wake chan struct{}
	// delayWake tells RunDelayed that the earliest WaitUntil changed;
	// timeoutWake tells RunTimeouts that an evaluation was handed out;
	// failedWake tells the leader an evaluation failed.
	delayWake   chan struct{}
	timeoutWake chan struct{}
	failedWake  chan struct{}
}

// heldEval is one evaluation in the broker.
type heldEval struct {
	eval       *structs.Evaluation
	deliveries int
	token      uint64
	deadline   time.Time // when outstanding: redelivered after this
	lastErr    string    // the reason of the last nack or timeout
}

// FailedEval is an evaluation that reached the delivery limit.
type FailedEval struct {
	Eval       *structs.Evaluation
	Deliveries int
	// Reason is the last nack's reason or "not acked within 30s".
	Reason string
}

// New returns a disabled broker.
func New(now func() time.Time, cfg Config) *Broker {
	return &Broker{
		now:         now,
		cfg:         cfg.withDefaults(),
		held:        map[string]*heldEval{},
		unacked:     map[string]*heldEval{},
		failing:     map[string]bool{},
		room:        make(chan struct{}),
		wake:        make(chan struct{}),
		delayWake:   make(chan struct{}, 1),
		timeoutWake: make(chan struct{}, 1),
		failedWake:  make(chan struct{}, 1),
	}
}

// Config returns the broker's bounds, defaults applied.
func (b *Broker) Config() Config { return b.cfg }

// SetEnabled turns the broker on (leader) or off (follower); turning it off
// forgets every evaluation and wakes blocked Dequeue calls.
func (b *Broker) SetEnabled(on bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.enabled = on
	if !on {
		b.held = map[string]*heldEval{}
		b.unacked = map[string]*heldEval{}
		b.failing = map[string]bool{}
		b.failed = nil
		b.ready = nil
		b.delayed = nil
		b.m.reset()
		b.signalLocked()
		b.openRoomLocked()
	}
}

// Enqueue adds an evaluation. It reports false when the broker is disabled,
// already holds it, holds it aside as failed, or is full (see Room).
func (b *Broker) Enqueue(e *structs.Evaluation) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.enqueueLocked(e)
}

// EnqueueAll adds evaluations under one lock and returns how many it took.
func (b *Broker) EnqueueAll(evals []*structs.Evaluation) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, e := range evals {
		if b.enqueueLocked(e) {
			n++
		}
	}
	return n
}

// EnqueueOwed adds evaluations as EnqueueAll does and returns those it
// turned away for lack of room, which the caller still owes the broker and
// offers again when Room fires. Evaluations it holds already, holds aside
// as failed, or refuses because it is disabled are not returned.
func (b *Broker) EnqueueOwed(evals []*structs.Evaluation) []*structs.Evaluation {
	b.mu.Lock()
	defer b.mu.Unlock()
	var owed []*structs.Evaluation
	for _, e := range evals {
		if _, full := b.offerLocked(e); full {
			owed = append(owed, e)
		}
	}
	return owed
}

func (b *Broker) enqueueLocked(e *structs.Evaluation) bool {
	ok, _ := b.offerLocked(e)
	return ok
}

// offerLocked adds e if it can; full reports a refusal for lack of room.
func (b *Broker) offerLocked(e *structs.Evaluation) (ok, full bool) {
	if !b.enabled || e == nil {
		return false, false
	}
	if _, ok := b.held[e.ID]; ok || b.failing[e.ID] {
		return false, false
	}
	if len(b.held) >= b.cfg.MaxEvals {
		b.refused = true
		b.m.refused.Add(1)
		return false, true
	}
	b.held[e.ID] = &heldEval{eval: e}
	b.pushLocked(e)
	return true, false
}

func (b *Broker) pushLocked(e *structs.Evaluation) {
	if !e.WaitUntil.IsZero() && e.WaitUntil.After(b.now()) {
		heap.Push(&b.delayed, e)
		b.m.delayed.Add(1)
		notify(b.delayWake)
		return
	}
	heap.Push(&b.ready, e)
	b.m.readyAdd(e.Priority, 1)
	b.signalLocked()
}

func (b *Broker) signalLocked() {
	close(b.wake)
	b.wake = make(chan struct{})
}

// forgetLocked drops an evaluation the broker no longer holds and opens
// Room if an Enqueue was refused for lack of it.
func (b *Broker) forgetLocked(id string) {
	delete(b.held, id)
	if b.refused && len(b.held) < b.cfg.MaxEvals {
		b.openRoomLocked()
	}
}

func (b *Broker) openRoomLocked() {
	b.refused = false
	close(b.room)
	b.room = make(chan struct{})
}

// notify does a non-blocking send on a one-slot wake-up channel.
func notify(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// Room returns a channel closed when the broker, having refused an
// evaluation for lack of room, can take one again. Whoever feeds the
// broker from state adds it to its watch set.
func (b *Broker) Room() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.room
}

// Full reports whether the broker holds MaxEvals evaluations.
func (b *Broker) Full() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.enabled && len(b.held) >= b.cfg.MaxEvals
}

// Dequeue blocks until an evaluation is ready or ctx ends. It returns the
// evaluation and the token its Ack or Nack must carry.
func (b *Broker) Dequeue(ctx context.Context) (*structs.Evaluation, uint64, error) {
	for {
		b.mu.Lock()
		if b.enabled && len(b.ready) > 0 {
			e := heap.Pop(&b.ready).(*structs.Evaluation)
			b.m.readyAdd(e.Priority, -1)
			h := b.held[e.ID]
			h.deliveries++
			b.nextToken++
			h.token = b.nextToken
			h.deadline = b.now().Add(b.cfg.RedeliveryTimeout)
			b.unacked[e.ID] = h
			b.m.unacked.Add(1)
			b.m.delivered.Add(1)
			token := h.token
			b.mu.Unlock()
			notify(b.timeoutWake)
			return e, token, nil
		}
		wake := b.wake
		b.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil, 0, ctx.Err()
		case <-wake:
		}
	}
}

// outstandingLocked returns the handed-out evaluation id if token is its
// current delivery's.
func (b *Broker) outstandingLocked(id string, token uint64) (*heldEval, error) {
	h, ok := b.unacked[id]
	if !ok || !b.enabled {
		return nil, fmt.Errorf("evaluation %s: %w", id, ErrNotOutstanding)
	}
	if h.token != token {
		return nil, fmt.Errorf("evaluation %s: %w", id, ErrTokenMismatch)
	}
	return h, nil
}

// Ack forgets a handed-out evaluation: it was processed.
func (b *Broker) Ack(id string, token uint64) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, err := b.outstandingLocked(id, token); err != nil {
		return err
	}
	delete(b.unacked, id)
	b.m.unacked.Add(-1)
	b.forgetLocked(id)
	return nil
}

// Nack puts a handed-out evaluation back (a plan conflict, a failed
// write), ready at once, unless it reached the delivery limit: then it
// fails (see TakeFailed) with reason. failed reports which.
func (b *Broker) Nack(id string, token uint64, reason string) (failed bool, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	h, err := b.outstandingLocked(id, token)
	if err != nil {
		return false, err
	}
	b.m.nacked.Add(1)
	h.lastErr = reason
	return b.requeueLocked(h), nil
}

// requeueLocked takes an outstanding evaluation back: ready again, or
// failed past the delivery limit (reported true).
func (b *Broker) requeueLocked(h *heldEval) bool {
	id := h.eval.ID
	delete(b.unacked, id)
	b.m.unacked.Add(-1)
	if h.deliveries >= b.cfg.DeliveryLimit {
		b.forgetLocked(id)
		b.failing[id] = true
		b.failed = append(b.failed, &FailedEval{Eval: h.eval, Deliveries: h.deliveries, Reason: h.lastErr})
		b.m.failed.Add(1)
		notify(b.failedWake)
		return true
	}
	// Ready at once, whatever its WaitUntil was: it was due already.
	heap.Push(&b.ready, h.eval)
	b.m.readyAdd(h.eval.Priority, 1)
	b.signalLocked()
	return false
}

// FailedCh receives a value when evaluations failed; TakeFailed returns them.
func (b *Broker) FailedCh() <-chan struct{} { return b.failedWake }

// TakeFailed returns the evaluations that failed since the last call. They
// stay held aside (Enqueue refuses them) until FailedRecorded.
func (b *Broker) TakeFailed() []*FailedEval {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := b.failed
	b.failed = nil
	return out
}

// FailedRecorded lets the broker take the evaluations again (their status
// in state is failed now, so nobody offers them).
func (b *Broker) FailedRecorded(ids ...string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, id := range ids {
		delete(b.failing, id)
	}
}

// expireUnacked hands out again every evaluation whose redelivery deadline
// passed (or fails it at the delivery limit) and returns the next deadline
// (zero when nothing is outstanding).
func (b *Broker) expireUnacked() time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	var next time.Time
	for _, h := range b.unacked {
		if !h.deadline.After(now) {
			h.lastErr = fmt.Sprintf("not acked within %s (worker stuck?)", b.cfg.RedeliveryTimeout)
			b.m.timedOut.Add(1)
			b.requeueLocked(h)
			continue
		}
		if next.IsZero() || h.deadline.Before(next) {
			next = h.deadline
		}
	}
	return next
}

// RunTimeouts redelivers evaluations held past RedeliveryTimeout. It runs
// on the leader until ctx ends.
func (b *Broker) RunTimeouts(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		wait := time.Hour
		if next := b.expireUnacked(); !next.IsZero() {
			wait = max(next.Sub(b.now()), time.Millisecond)
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-b.timeoutWake:
		case <-timer.C:
		}
	}
}

// Stats counts what the broker holds.
type Stats struct {
	Ready, Delayed, Unacked, Failed int
}

// Stats returns the number of ready, delayed, handed-out and failed
// (not yet recorded) evaluations.
func (b *Broker) Stats() Stats {
	b.mu.Lock()
	defer b.mu.Unlock()
	return Stats{Ready: len(b.ready), Delayed: len(b.delayed), Unacked: len(b.unacked), Failed: len(b.failing)}
}

// RunDelayed moves delayed evaluations to the ready queue when their time
// comes. It runs on the leader until ctx ends.
func (b *Broker) RunDelayed(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		b.mu.Lock()
		now := b.now()
		for len(b.delayed) > 0 && !b.delayed[0].WaitUntil.After(now) {
			e := heap.Pop(&b.delayed).(*structs.Evaluation)
			b.m.delayed.Add(-1)
			heap.Push(&b.ready, e)
			b.m.readyAdd(e.Priority, 1)
			b.signalLocked()
		}
		wait := time.Hour
		if len(b.delayed) > 0 {
			wait = b.delayed[0].WaitUntil.Sub(now)
		}
		b.mu.Unlock()
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-b.delayWake:
		case <-timer.C:
		}
	}
}
