package server

import (
	"context"
	"errors"

	"github.com/google/uuid"

	"github.com/ciplat/ciplat/fsm/structs"
	"github.com/ciplat/ciplat/scheduler"
)

// errPlanConflict means a placement no longer fit when the applier
// re-checked it: the worker schedules the evaluation again.
var errPlanConflict = errors.New("plan conflict: the node's capacity was taken")

// maxPlanBatch bounds how many plans one Raft entry commits.
const maxPlanBatch = 256

type pendingPlan struct {
	plan   *structs.Plan
	result chan error
}

// PlanQueue carries plans from scheduler workers to the single applier.
// Submit is safe for concurrent use; only the applier calls next.
type PlanQueue struct {
	ch chan *pendingPlan
}

// NewPlanQueue returns an empty queue.
func NewPlanQueue() *PlanQueue {
	return &PlanQueue{ch: make(chan *pendingPlan, maxPlanBatch)}
}

// Submit queues a plan and waits for the applier's verdict: nil when
// committed (or recorded as blocked), errPlanConflict when it no longer fit.
func (q *PlanQueue) Submit(ctx context.Context, p *structs.Plan) error {
	pp := &pendingPlan{plan: p, result: make(chan error, 1)}
	select {
	case q.ch <- pp:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-pp.result:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// next blocks for one plan, then takes whatever else is already queued.
func (q *PlanQueue) next(ctx context.Context) []*pendingPlan {
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

// planApplier is the one goroutine that commits plans. It re-checks every
// placement against the newest state plus what it accepted earlier in the
// same batch (optimistic concurrency: nothing is double-booked), and commits
// a whole batch in one Raft entry.
func (s *Server) planApplier(ctx context.Context) {
	for {
		batch := s.plans.next(ctx)
		if batch == nil {
			return
		}
		s.applyPlans(batch)
	}
}

func (s *Server) applyPlans(batch []*pendingPlan) {
	snap, err := s.State().Snapshot()
	if err != nil {
		for _, p := range batch {
			p.result <- err
		}
		return
	}
	now := s.now()
	req := &structs.PlanApplyRequest{
		WriteRequest: structs.WriteRequest{Timestamp: now},
		Metrics:      map[string]*structs.PlacementMetrics{},
	}
	taken := map[string]structs.Resources{}
	verdict := make([]error, len(batch))
	for i, pp := range batch {
		p := pp.plan
		if p.Placement == nil {
			ev, _ := snap.EvalByID(nil, p.EvalID)
			if ev == nil {
				continue
			}
			desc := "no node can run it: " + scheduler.Explain(p.Metrics)
			if ev.Status == structs.EvalBlocked && ev.StatusDescription == desc {
				continue // already recorded
			}
			ev = ev.Copy()
			ev.Status = structs.EvalBlocked
			ev.StatusDescription = desc
			req.Evals = append(req.Evals, ev)
			req.Metrics[p.JobID] = p.Metrics
			continue
		}
		a := p.Placement
		node, _ := snap.NodeByID(nil, a.NodeID)
		if node == nil || !node.Schedulable() {
			verdict[i] = errPlanConflict
			continue
		}
		allocs, err := snap.AllocsByNode(a.NodeID)
		if err != nil {
			verdict[i] = err
			continue
		}
		extra := taken[a.NodeID].Add(a.Resources)
		if ok, _ := scheduler.AllocsFit(node, allocs, extra); !ok {
			verdict[i] = errPlanConflict
			continue
		}
		taken[a.NodeID] = extra
		a = a.Copy()
		a.ID = uuid.NewString()
		a.CreatedAt = now
		a.DesiredStatus = structs.AllocDesiredRun
		a.ClientStatus = structs.AllocClientPending
		req.Allocs = append(req.Allocs, a)
		req.Metrics[p.JobID] = p.Metrics
	}
	if len(req.Allocs)+len(req.Evals) > 0 {
		if _, _, err := s.apply(structs.PlanApplyRequestType, req); err != nil {
			for i := range verdict {
				if verdict[i] == nil {
					verdict[i] = err
				}
			}
		}
	}
	for i, pp := range batch {
		pp.result <- verdict[i]
	}
}
