package planapply

import (
	"context"

	"github.com/ciplat/ciplat/fsm/structs"
)

// maxPlanBatch bounds how many plans one Raft entry commits.
const maxPlanBatch = 256

// pendingPlan is a plan waiting for the applier's verdict; done receives
// it and must not block (the applier calls it).
type pendingPlan struct {
	plan *structs.Plan
	done func(error)
}

// Queue carries plans from scheduler workers to the single applier.
// Submit is safe for concurrent use; only the applier calls next.
type Queue struct {
	ch chan *pendingPlan
}

// NewQueue returns an empty queue.
func NewQueue() *Queue {
	return &Queue{ch: make(chan *pendingPlan, maxPlanBatch)}
}

// Submit queues a plan and waits for the applier's verdict: nil when
// committed (or recorded as blocked), ErrConflict when it no longer fit.
func (q *Queue) Submit(ctx context.Context, p *structs.Plan) error {
	result := make(chan error, 1)
	if err := q.SubmitAsync(ctx, p, func(err error) { result <- err }); err != nil {
		return err
	}
	select {
	case err := <-result:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// SubmitAsync queues a plan; the applier calls done with its verdict
// later, from its own goroutine, so done must not block.
func (q *Queue) SubmitAsync(ctx context.Context, p *structs.Plan, done func(error)) error {
	select {
	case q.ch <- &pendingPlan{plan: p, done: done}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// next blocks for one plan, then takes whatever else is already queued.
func (q *Queue) next(ctx context.Context) []*pendingPlan {
	var batch []*pendingPlan
	select {
	case p := <-q.ch:
		batch = append(batch, p)
	case <-ctx.Done():
		return nil
	}
	for len(batch) < maxPlanBatch {
		select {
		case p := <-q.ch:
			batch = append(batch, p)
		default:
			return batch
		}
	}
	return batch
}
