package server

import (
	"container/heap"
	"context"
	"sync"
	"time"

	"github.com/ciplat/ciplat/fsm/structs"
)

// EvalBroker hands evaluations to scheduler workers: highest priority
// first, FIFO (by Raft create index) within a priority, and never before an
// evaluation's WaitUntil. Each evaluation is known to the broker once (while
// queued, delayed or handed out); Ack forgets it, Nack queues it again.
//
// The broker lives on the leader only: SetEnabled(false) drops everything,
// and the new leader rebuilds the queue from state. All methods are safe for
// concurrent use.
type EvalBroker struct {
	now func() time.Time

	mu      sync.Mutex
	enabled bool
	known   map[string]int // eval ID → deliveries so far
	ready   evalHeap
	delayed delayHeap
	// wake is closed and replaced whenever ready gains an item or the
	// broker is disabled.
	wake chan struct{}
	// delayWake tells runDelayed that the earliest WaitUntil changed.
	delayWake chan struct{}
}

// DeliveryLimit is how often an evaluation is handed out before it is dropped
// from the queue (it stays pending in state and is retried on the next
// leadership change or capacity change).
const DeliveryLimit = 5

// NewEvalBroker returns a disabled broker.
func NewEvalBroker(now func() time.Time) *EvalBroker {
	return &EvalBroker{
		now:       now,
		known:     map[string]int{},
		wake:      make(chan struct{}),
		delayWake: make(chan struct{}, 1),
	}
}

// SetEnabled turns the broker on (leader) or off (follower); turning it off
// forgets every evaluation and wakes blocked Dequeue calls.
func (b *EvalBroker) SetEnabled(on bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.enabled = on
	if !on {
		b.known = map[string]int{}
		b.ready = nil
		b.delayed = nil
		b.signalLocked()
	}
}

// Enqueue adds an evaluation unless the broker already knows it.
func (b *EvalBroker) Enqueue(e *structs.Evaluation) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.enabled {
		return
	}
	if _, ok := b.known[e.ID]; ok {
		return
	}
	b.known[e.ID] = 0
	b.pushLocked(e)
}

func (b *EvalBroker) pushLocked(e *structs.Evaluation) {
	if !e.WaitUntil.IsZero() && e.WaitUntil.After(b.now()) {
		heap.Push(&b.delayed, e)
		select {
		case b.delayWake <- struct{}{}:
		default:
		}
		return
	}
	heap.Push(&b.ready, e)
	b.signalLocked()
}

func (b *EvalBroker) signalLocked() {
	close(b.wake)
	b.wake = make(chan struct{})
}

// Dequeue blocks until an evaluation is ready or ctx ends.
func (b *EvalBroker) Dequeue(ctx context.Context) (*structs.Evaluation, error) {
	for {
		b.mu.Lock()
		if b.enabled && len(b.ready) > 0 {
			e := heap.Pop(&b.ready).(*structs.Evaluation)
			b.known[e.ID]++
			b.mu.Unlock()
			return e, nil
		}
		wake := b.wake
		b.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-wake:
		}
	}
}

// Ack forgets a handed-out evaluation: it was processed.
func (b *EvalBroker) Ack(id string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.known, id)
}

// Nack puts a handed-out evaluation back (a plan conflict, a failed write);
// after DeliveryLimit deliveries it is dropped and Nack returns false.
func (b *EvalBroker) Nack(e *structs.Evaluation) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	n, ok := b.known[e.ID]
	if !ok || !b.enabled {
		return false
	}
	if n >= DeliveryLimit {
		delete(b.known, e.ID)
		return false
	}
	b.pushLocked(e)
	return true
}

// Stats returns the number of ready, delayed and handed-out evaluations.
func (b *EvalBroker) Stats() (ready, delayed, unacked int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.ready), len(b.delayed), len(b.known) - len(b.ready) - len(b.delayed)
}

// runDelayed moves delayed evaluations to the ready queue when their time
// comes. It runs on the leader until ctx ends.
func (b *EvalBroker) runDelayed(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		b.mu.Lock()
		now := b.now()
		for len(b.delayed) > 0 && !b.delayed[0].WaitUntil.After(now) {
			e := heap.Pop(&b.delayed).(*structs.Evaluation)
			heap.Push(&b.ready, e)
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

// evalHeap orders by priority (high first), then create index (old first).
type evalHeap []*structs.Evaluation

func (h evalHeap) Len() int { return len(h) }
func (h evalHeap) Less(i, j int) bool {
	if h[i].Priority != h[j].Priority {
		return h[i].Priority > h[j].Priority
	}
	return h[i].CreateIndex < h[j].CreateIndex
}
func (h evalHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *evalHeap) Push(x any)   { *h = append(*h, x.(*structs.Evaluation)) }
func (h *evalHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}

// delayHeap orders by WaitUntil.
type delayHeap []*structs.Evaluation

func (h delayHeap) Len() int           { return len(h) }
func (h delayHeap) Less(i, j int) bool { return h[i].WaitUntil.Before(h[j].WaitUntil) }
func (h delayHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *delayHeap) Push(x any)        { *h = append(*h, x.(*structs.Evaluation)) }
func (h *delayHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}
