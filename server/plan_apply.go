package server

import (
	"context"
	"errors"
	"slices"

	"github.com/google/uuid"

	"github.com/ciplat/ciplat/fsm/state"
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
	// taken is what placements accepted earlier in the batch hold per node;
	// evicted the allocations their preemptions already claimed.
	taken := map[string]structs.Resources{}
	evicted := map[string]bool{}
	verdict := make([]error, len(batch))
	blocked := 0
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
			blocked++
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
		victims, ok := s.checkPreemptions(snap, p, allocs, evicted)
		if !ok {
			verdict[i] = errPlanConflict
			continue
		}
		if len(victims) > 0 {
			allocs = slices.DeleteFunc(slices.Clone(allocs), func(x *structs.Allocation) bool { return victims[x.ID] })
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
		for _, pr := range p.Preemptions {
			evicted[pr.AllocID] = true
			req.Preemptions = append(req.Preemptions, &structs.Preemption{AllocID: pr.AllocID, ByAllocID: a.ID, Reason: pr.Reason})
		}
	}
	conflicts := 0
	for _, v := range verdict {
		if errors.Is(v, errPlanConflict) {
			conflicts++
		}
	}
	s.metrics.planConflicts.Add(uint64(conflicts))
	if len(req.Allocs)+len(req.Evals) > 0 {
		resp, _, err := s.apply(structs.PlanApplyRequestType, req)
		if err != nil {
			for i := range verdict {
				if verdict[i] == nil {
					verdict[i] = err
				}
			}
		} else {
			if n, ok := resp.(int); ok {
				s.metrics.placements.Add(uint64(n))
			}
			s.metrics.evalsBlocked.Add(uint64(blocked))
			s.metrics.preemptions.Add(uint64(len(req.Preemptions)))
		}
	}
	for i, pp := range batch {
		pp.result <- verdict[i]
	}
}

// checkPreemptions re-checks a plan's evictions against the applier's
// snapshot: each must be a live allocation on the plan's node, of a job
// with a lower priority than the plan's, not claimed by an earlier plan of
// the batch. It returns the evicted allocation IDs, or false when one no
// longer qualifies (the plan is a conflict: schedule again).
func (s *Server) checkPreemptions(snap *state.StateSnapshot, p *structs.Plan, allocs []*structs.Allocation, evicted map[string]bool) (map[string]bool, bool) {
	if len(p.Preemptions) == 0 {
		return nil, true
	}
	onNode := make(map[string]*structs.Allocation, len(allocs))
	for _, a := range allocs {
		onNode[a.ID] = a
	}
	out := make(map[string]bool, len(p.Preemptions))
	for _, pr := range p.Preemptions {
		a := onNode[pr.AllocID]
		if a == nil || !a.Live() || evicted[pr.AllocID] {
			return nil, false
		}
		j, err := snap.JobByID(nil, a.JobID)
		if err != nil || j == nil || j.Priority >= p.Priority {
			return nil, false
		}
		out[pr.AllocID] = true
	}
	return out, true
}
