package planapply

import (
	"errors"
	"slices"

	"github.com/ciplat/ciplat/fsm/state"
	"github.com/ciplat/ciplat/fsm/structs"
	"github.com/ciplat/ciplat/scheduler"
)

// ErrConflict means a placement no longer fit when the applier
// re-checked it: the worker schedules the evaluation again.
var ErrConflict = errors.New("plan conflict: the node's capacity was taken")

// batchCheck is the context the plans of one batch are checked in: the
// state snapshot, the plan entries in flight captured before it, and what
// the plans accepted earlier in the batch hold. The checks are pure
// functions of it and the plan; only accept changes it. One goroutine (the
// applier's) uses it, for one batch.
type batchCheck struct {
	snap   *state.StateSnapshot
	flying inflightView
	// taken is what placements accepted earlier in the batch hold per node;
	// evicted the allocations their preemptions claimed.
	taken   map[string]structs.Resources
	evicted map[string]bool
	// siblings are the placements accepted earlier in the batch, by
	// pipeline: the pipeline re-check counts them as unseen by later plans.
	siblings map[string][]*structs.Allocation
}

func newBatchCheck(snap *state.StateSnapshot, flying inflightView) *batchCheck {
	return &batchCheck{snap: snap, flying: flying, taken: map[string]structs.Resources{},
		evicted: map[string]bool{}, siblings: map[string][]*structs.Allocation{}}
}

// blockedEval is the check of a plan without a placement (no node can run
// its job): its evaluation, copied and marked blocked with the scheduler's
// explanation, or nil when there is nothing to record (the evaluation is
// gone, or already blocked for the same reason).
func (c *batchCheck) blockedEval(p *structs.Plan) *structs.Evaluation {
	ev, _ := c.snap.EvalByID(nil, p.EvalID)
	if ev == nil {
		return nil
	}
	desc := "no node can run it: " + scheduler.Explain(p.Metrics)
	if ev.Status == structs.EvalBlocked && ev.StatusDescription == desc {
		return nil // already recorded
	}
	ev = ev.Copy()
	ev.Status = structs.EvalBlocked
	ev.StatusDescription = desc
	return ev
}

// checkPlacement is the check of a plan with a placement: nil when it
// still fits on the snapshot plus the entries in flight plus what the batch
// accepted so far. ErrConflict when its node is gone or not schedulable,
// one of its evictions no longer qualifies (checkPreemptions), or its
// resources no longer fit; ErrPipelineConflict when a pipeline sibling its
// snapshot missed changes its spread or anti-affinity (recheckPipeline);
// or the error of a state read. It changes nothing: accept records a
// placement that passed.
func (c *batchCheck) checkPlacement(p *structs.Plan) error {
	a := p.Placement
	node, _ := c.snap.NodeByID(nil, a.NodeID)
	if node == nil || !node.Schedulable() {
		return ErrConflict
	}
	allocs, err := c.snap.AllocsByNode(a.NodeID)
	if err != nil {
		return err
	}
	victims, ok := checkPreemptions(c.snap, p, allocs, c.evicted, c.flying)
	if !ok {
		return ErrConflict
	}
	if len(victims) > 0 {
		allocs = slices.DeleteFunc(slices.Clone(allocs), func(x *structs.Allocation) bool { return victims[x.ID] })
	}
	extra := c.taken[a.NodeID].Add(a.Resources)
	if ok, _ := scheduler.AllocsFit(node, allocs, extra.Add(c.flying.held(c.snap, a.NodeID))); !ok {
		return ErrConflict
	}
	return recheckPipeline(c.snap, p, node, c.siblings, c.flying)
}

// accept records plan p, which passed checkPlacement, in the batch: the
// resources of alloc (the placement the entry commits) on its node, alloc
// as a sibling of its pipeline, and the allocations p evicts.
func (c *batchCheck) accept(p *structs.Plan, alloc *structs.Allocation) {
	c.taken[alloc.NodeID] = c.taken[alloc.NodeID].Add(alloc.Resources)
	if alloc.PipelineID != "" {
		c.siblings[alloc.PipelineID] = append(c.siblings[alloc.PipelineID], alloc)
	}
	for _, pr := range p.Preemptions {
		c.evicted[pr.AllocID] = true
	}
}

// checkPreemptions re-checks a plan's evictions against the applier's
// snapshot: each must be a live allocation on the plan's node, of a job
// with a lower priority than the plan's, not claimed by an earlier plan of
// the batch or of an entry in flight. It returns the evicted allocation
// IDs, or false when one no longer qualifies (the plan is a conflict:
// schedule again).
func checkPreemptions(snap *state.StateSnapshot, p *structs.Plan, allocs []*structs.Allocation,
	evicted map[string]bool, inflight inflightView) (map[string]bool, bool) {
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
		if a == nil || !a.Live() || evicted[pr.AllocID] || inflight.evicting(pr.AllocID) {
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
