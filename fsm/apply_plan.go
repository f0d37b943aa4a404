package fsm

import (
	"fmt"

	"github.com/ciplat/ciplat/fsm/state"
	"github.com/ciplat/ciplat/fsm/structs"
)

// applyPlan commits the placements the plan applier accepted: each job
// PENDING → SCHEDULED with its new allocation, its evaluation complete. A
// placement whose job is no longer PENDING or waits on another evaluation is
// stale and skipped (not an error). Evaluations that could not be placed are
// recorded, and their PENDING jobs say why. Preemptions evict what the
// committed placements need (see preempt). The response is the number of
// allocations committed (int).
func applyPlan(tx *state.WriteTxn, req *structs.PlanApplyRequest) (any, error) {
	ac := newApplyCtx(tx, req.Timestamp)
	ac.rules = req.Rules
	committed := 0
	var placed map[string]*structs.Allocation
	for _, a := range req.Allocs {
		ok, err := ac.place(a, req.Metrics)
		if err != nil {
			return nil, err
		}
		if ok {
			committed++
			if len(req.Preemptions) > 0 {
				if placed == nil {
					placed = map[string]*structs.Allocation{}
				}
				placed[a.ID] = a
			}
		}
	}
	if err := ac.preempt(req.Preemptions, placed); err != nil {
		return nil, err
	}
	for _, e := range req.Evals {
		if err := ac.recordUnplaced(e, req.Metrics); err != nil {
			return nil, err
		}
	}
	return ac.done(committed)
}

// place commits one placement, or reports false when it is stale.
func (ac *applyCtx) place(a *structs.Allocation, metrics map[string]*structs.PlacementMetrics) (bool, error) {
	if a == nil || a.ID == "" || a.NodeID == "" {
		return false, fmt.Errorf("plan: an allocation has no ID or no node ID")
	}
	j, err := ac.tx.JobByID(a.JobID)
	if err != nil {
		return false, err
	}
	if j == nil || j.State != structs.JobPending || j.EvalID == "" || j.EvalID != a.EvalID {
		return false, nil
	}
	if old, err := ac.tx.AllocByID(a.ID); err != nil || old != nil {
		return false, err // an allocation ID is used once
	}
	na := a.Copy()
	na.PipelineID = j.PipelineID
	na.Attempt = j.Attempt
	na.ClientStatus = structs.AllocClientPending
	na.DesiredStatus = structs.AllocDesiredRun
	na.CreatedAt = ac.ts
	if err := ac.tx.UpsertAlloc(na); err != nil {
		return false, err
	}

	c := j.Copy()
	if err := move(c, structs.JobScheduled); err != nil {
		return false, err
	}
	evalID := c.EvalID
	c.AllocID = na.ID
	c.NodeID = na.NodeID
	c.EvalID = ""
	c.Reason = ""
	c.Placement = metrics[j.ID]
	c.Steps = freshSteps(c.Spec)
	if err := ac.putJob(c); err != nil {
		return false, err
	}
	ac.emitPlacement(c, na, evalID)
	return true, ac.setEvalStatus(evalID, structs.EvalComplete)
}

// recordUnplaced stores an evaluation the scheduler could not place (or
// re-queued). When its job is still PENDING, the job shows the scheduler's
// metrics and reason, and waits on this evaluation from now on, so a
// re-queued evaluation with a new ID can still commit its placement.
func (ac *applyCtx) recordUnplaced(e *structs.Evaluation, metrics map[string]*structs.PlacementMetrics) error {
	if e == nil {
		return fmt.Errorf("plan: an evaluation is missing")
	}
	if err := ac.tx.UpsertEval(e.Copy()); err != nil {
		return err
	}
	j, err := ac.tx.JobByID(e.JobID)
	if err != nil || j == nil || j.State != structs.JobPending {
		return err
	}
	c := j.Copy()
	c.Placement = metrics[j.ID]
	c.Reason = e.StatusDescription
	if c.Reason == "" {
		c.Reason = reasonWaitingPlacement
	}
	if e.Status == structs.EvalPending || e.Status == structs.EvalBlocked {
		c.EvalID = e.ID
	}
	return ac.putJob(c)
}
