package fsm

import (
	"fmt"
	"time"

	"github.com/ciplat/ciplat/fsm/structs"
)

// preempt applies a plan's evictions whose placement committed in this
// entry (placed holds the new allocations' IDs). Each evicted allocation
// gets desired status stop and PreemptedBy, so it stops counting against
// its node (structs.Allocation.Live) and its client kills the worker. The
// job it ran ends that attempt TERMINATED and goes back to PENDING at once
// with a new evaluation, after "preempted by <job> (priority P)". The move
// uses up neither a retry nor a reschedule attempt (as in Nomad): the job
// did nothing wrong and the eviction was the scheduler's choice
// (rescheduleAfterFault, cause preempted).
//
// The leader's plan applier checked every eviction; the entry still skips
// one whose allocation is no longer live or whose job does not have a
// lower priority than the preempting job, so a stale plan evicts nothing.
func (ac *applyCtx) preempt(ps []*structs.Preemption, placed map[string]*structs.Allocation) error {
	for _, p := range ps {
		if p == nil {
			continue
		}
		by := placed[p.ByAllocID]
		if by == nil {
			continue // its placement was stale: evict nothing
		}
		a, err := ac.tx.AllocByID(p.AllocID)
		if err != nil {
			return err
		}
		if a == nil || !a.Live() || a.NodeID != by.NodeID {
			continue
		}
		byJob, err := ac.tx.JobByID(by.JobID)
		if err != nil {
			return err
		}
		j, err := ac.tx.JobByID(a.JobID)
		if err != nil {
			return err
		}
		if byJob == nil || j == nil || j.Priority >= byJob.Priority {
			continue
		}
		stop := a.Copy()
		stop.DesiredStatus = structs.AllocDesiredStop
		stop.PreemptedBy = by.ID
		if err := ac.tx.UpsertAlloc(stop); err != nil {
			return err
		}
		if j.AllocID != a.ID || (j.State != structs.JobScheduled && j.State != structs.JobRunning) {
			continue
		}
		reason := p.Reason
		if reason == "" {
			reason = fmt.Sprintf("preempted by %s (priority %d)", byJob.Name, byJob.Priority)
		}
		if ac.rules < structs.RulesV1 {
			if err := ac.evictV0(j.Copy(), reason); err != nil {
				return err
			}
			continue
		}
		if err := ac.rescheduleAfterFault(j.Copy(), structs.CausePreempted, reason); err != nil {
			return err
		}
	}
	return nil
}

// evictV0 is a preemption under an entry without Rules, as before issue
// 12: j's attempt ends TERMINATED (no kind or cause) and it goes back to
// PENDING for an immediate placement, counted in Job.Rescheduled only,
// without touching its retry or reschedule policy.
func (ac *applyCtx) evictV0(j *structs.Job, reason string) error {
	if err := move(j, structs.JobTerminated); err != nil {
		return err
	}
	ac.record(j, structs.JobTerminated, reason)
	final := false
	ac.emitJob(structs.TopicJobFailed, j, func(p *structs.JobEventPayload) {
		p.State, p.Reason, p.Final = structs.JobTerminated, reason, &final
	})
	if err := move(j, structs.JobPending); err != nil {
		return err
	}
	j.Attempt++
	j.Rescheduled++
	j.AllocID = ""
	j.RetryAt = time.Time{}
	if err := ac.createEval(j, structs.TriggerPreempted, time.Time{}); err != nil {
		return err
	}
	j.Reason = reason
	ac.emitJob(structs.TopicJobRequested, j, func(p *structs.JobEventPayload) {
		p.Trigger = structs.TriggerPreempted
	})
	return ac.putJob(j)
}
