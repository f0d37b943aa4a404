package fsm

import (
	"fmt"

	"github.com/ciplat/ciplat/fsm/state"
	"github.com/ciplat/ciplat/fsm/structs"
)

// applyAllocClientUpdate records what clients report about the allocations
// they run. The allocation always takes the new client status; its job
// changes only while the allocation is the job's current one and the job has
// not ended: steps are merged, and the job moves to RUNNING, SUCCEEDED (then
// jobs whose needs are all met get evaluations) or FAILED (then it is
// retried with backoff, or fails for good and its dependents are skipped;
// a FAILED report with a cause is an infrastructure fault and is
// rescheduled instead, see rescheduleAfterFault).
// Updates for unknown allocations are ignored.
func applyAllocClientUpdate(tx *state.WriteTxn, req *structs.AllocClientUpdateRequest) (any, error) {
	ac := newApplyCtx(tx, req.Timestamp)
	for _, u := range req.Updates {
		if u == nil {
			continue
		}
		if err := ac.allocUpdate(u); err != nil {
			return nil, err
		}
	}
	return ac.done(nil)
}

func (ac *applyCtx) allocUpdate(u *structs.AllocUpdate) error {
	switch u.JobState {
	case "", structs.JobRunning, structs.JobSucceeded, structs.JobFailed:
	default:
		return fmt.Errorf("allocation %s: job_state %q is not one a client may report (RUNNING, SUCCEEDED or FAILED)",
			u.AllocID, u.JobState)
	}
	if err := checkClientCause(u); err != nil {
		return err
	}
	a, err := ac.tx.AllocByID(u.AllocID)
	if err != nil || a == nil {
		return err
	}
	statusChanged := u.ClientStatus != "" && u.ClientStatus != a.ClientStatus && !revivesLost(a, u.ClientStatus)
	na := a.Copy()
	workerChanged := ac.mergeWorker(na, u)
	if statusChanged || workerChanged {
		if statusChanged {
			na.ClientStatus = u.ClientStatus
		}
		if err := ac.tx.UpsertAlloc(na); err != nil {
			return err
		}
		if statusChanged {
			ac.emitWorker(na, a.ClientStatus, u.Reason)
		}
	}
	j, err := ac.tx.JobByID(a.JobID)
	if err != nil || j == nil || j.AllocID != a.ID || j.State.Terminal() {
		return err
	}

	c := j.Copy()
	steps := changedSteps(j, u.Steps)
	changed := mergeSteps(c, u.Steps)
	// Any job state a client reports means its worker runs: a SCHEDULED job
	// starts first, so its events come before its steps'.
	if u.JobState != "" && c.State == structs.JobScheduled {
		if err := ac.start(c); err != nil {
			return err
		}
		changed = true
	}
	ac.emitSteps(c, steps)
	switch u.JobState {
	case structs.JobSucceeded:
		if err := ac.start(c); err != nil {
			return err
		}
		if err := move(c, structs.JobSucceeded); err != nil {
			return err
		}
		c.FinishedAt = ac.ts
		ac.record(c, structs.JobSucceeded, u.Reason)
		if err := ac.putJob(c); err != nil {
			return err
		}
		ac.emitJob(structs.TopicJobCompleted, c, func(p *structs.JobEventPayload) { p.Reason = u.Reason })
		return ac.placeReadyJobs(c.PipelineID)
	case structs.JobFailed:
		if err := ac.start(c); err != nil {
			return err
		}
		if u.Cause != "" {
			return ac.rescheduleAfterFault(c, u.Cause, u.Reason)
		}
		return ac.attemptFailed(c, structs.JobFailed, u.Reason)
	}
	if !changed {
		return nil
	}
	return ac.putJob(c)
}

// start moves a SCHEDULED job to RUNNING (a RUNNING job stays) and stamps
// its first start.
func (ac *applyCtx) start(j *structs.Job) error {
	started := false
	if j.State == structs.JobScheduled {
		if err := move(j, structs.JobRunning); err != nil {
			return err
		}
		started = true
	}
	if j.StartedAt.IsZero() {
		j.StartedAt = ac.ts
	}
	if started {
		ac.emitJob(structs.TopicJobStarted, j, nil)
	}
	return nil
}

// attemptFailed ends the current attempt of a job that failed on its own
// (RUNNING) or whose worker an operator stopped (TERMINATED): the attempt is
// recorded (kind retry when it is retried), then the job goes back to
// PENDING with a delayed evaluation if its retry policy allows, else it
// stays in end state and the jobs needing it are skipped. Infrastructure
// faults go to rescheduleAfterFault instead: they never use a retry.
func (ac *applyCtx) attemptFailed(j *structs.Job, end structs.JobState, reason string) error {
	if retriesLeft(j) {
		ac.recordAs(j, end, reason, structs.AttemptRetry, "")
		final := false
		ac.emitJob(structs.TopicJobFailed, j, func(p *structs.JobEventPayload) {
			p.State, p.Reason, p.Final, p.Kind = end, reason, &final, structs.AttemptRetry
		})
		if err := move(j, structs.JobPending); err != nil {
			return err
		}
		if err := ac.retry(j, reason); err != nil {
			return err
		}
		return ac.putJob(j)
	}
	ac.record(j, end, reason)
	if j.State != end {
		if err := move(j, end); err != nil {
			return err
		}
	}
	return ac.failForGood(j, reason)
}

// mergeSteps replaces the job's step statuses with the reported ones of the
// same name; names the spec does not have are ignored.
func mergeSteps(j *structs.Job, steps []structs.StepStatus) bool {
	changed := false
	for _, s := range steps {
		for i := range j.Steps {
			if j.Steps[i].Name == s.Name {
				j.Steps[i] = s
				changed = true
				break
			}
		}
	}
	return changed
}

// mergeWorker records on c (a copy of the allocation) what u says about its
// worker: driver, handle ID, image and state, each only when reported. A
// worker that ended stays ended (a late RUNNING report does not revive
// it). It reports whether anything changed.
func (ac *applyCtx) mergeWorker(c *structs.Allocation, u *structs.AllocUpdate) bool {
	if u.Driver == "" && u.WorkerID == "" && u.Image == "" && u.WorkerState == "" {
		return false
	}
	switch u.WorkerState {
	case "", structs.WorkerCreating, structs.WorkerRunning, structs.WorkerTerminated, structs.WorkerFailed:
	default:
		return false // an unknown state is ignored, not stored
	}
	w := structs.WorkerInfo{}
	if c.Worker != nil {
		w = *c.Worker
	}
	before := w
	if u.Driver != "" {
		w.Driver = u.Driver
	}
	if u.WorkerID != "" {
		w.HandleID = u.WorkerID
	}
	if u.Image != "" {
		w.Image = u.Image
	}
	ended := w.State == structs.WorkerTerminated || w.State == structs.WorkerFailed
	if u.WorkerState != "" && !ended {
		w.State = u.WorkerState
		switch u.WorkerState {
		case structs.WorkerRunning:
			if w.StartedAt.IsZero() {
				w.StartedAt = ac.ts
			}
		case structs.WorkerTerminated, structs.WorkerFailed:
			w.EndedAt = ac.ts
			if u.Reason != "" {
				w.Reason = u.Reason
			}
		}
	}
	if w == before {
		return false
	}
	c.Worker = &w
	return true
}

// applyWorkerStop terminates a worker at an operator's request: its
// allocation gets desired status stop (the client destroys the worker and
// reports it complete) and, when it runs its job's current attempt, the
// attempt ends TERMINATED with the reason and the job is retried or fails
// for good per its retry policy. A worker whose allocation is unknown,
// already ended or already stopped is left alone (DELETE is idempotent).
func applyWorkerStop(tx *state.WriteTxn, req *structs.WorkerStopRequest) (any, error) {
	ac := newApplyCtx(tx, req.Timestamp)
	a, err := tx.AllocByID(req.AllocID)
	if err != nil {
		return nil, err
	}
	if a == nil || !a.Live() || a.DesiredStatus == structs.AllocDesiredStop {
		return ac.done(nil)
	}
	reason := req.Reason
	if reason == "" {
		reason = "worker terminated by operator"
	}
	stop := a.Copy()
	stop.DesiredStatus = structs.AllocDesiredStop
	if stop.Worker == nil {
		stop.Worker = &structs.WorkerInfo{}
	}
	stop.Worker.StopRequested = true
	stop.Worker.Reason = reason
	if err := tx.UpsertAlloc(stop); err != nil {
		return nil, err
	}
	j, err := tx.JobByID(a.JobID)
	if err != nil {
		return nil, err
	}
	if j == nil || j.AllocID != a.ID || (j.State != structs.JobScheduled && j.State != structs.JobRunning) {
		return ac.done(nil)
	}
	c := j.Copy()
	if err := move(c, structs.JobTerminated); err != nil {
		return nil, err
	}
	if err := ac.attemptFailed(c, structs.JobTerminated, reason); err != nil {
		return nil, err
	}
	return ac.done(nil)
}
