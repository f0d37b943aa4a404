package fsm

import (
	"fmt"
	"slices"
	"time"

	"github.com/ciplat/ciplat/fsm/state"
	"github.com/ciplat/ciplat/fsm/structs"
)

// applyPipelineRegister stores a new pipeline and its jobs, all PENDING, and
// an evaluation for each job that needs nothing. A pipeline already stored
// under the same ID, or under the same unexpired idempotency key and spec,
// is answered with Existing and nothing changes, so a client may resubmit
// safely; the same key with another spec is refused (apply_idempotency.go).
func applyPipelineRegister(tx *state.WriteTxn, req *structs.PipelineRegisterRequest) (any, error) {
	ac := newApplyCtx(tx, req.Timestamp)
	p := req.Pipeline
	if p == nil || p.ID == "" {
		return nil, fmt.Errorf("register pipeline: the request has no pipeline or no pipeline ID")
	}
	key := req.IdempotencyKey
	if key == "" {
		key = p.IdempotencyKey
	}
	held, err := heldIdempotencyKey(tx, req, key) // apply_idempotency.go
	if err != nil {
		return nil, err
	}
	if held != "" {
		return &structs.PipelineRegisterResponse{PipelineID: held, Existing: true, Index: ac.index}, nil
	}
	if existing, err := tx.PipelineByID(p.ID); err != nil {
		return nil, err
	} else if existing != nil {
		return &structs.PipelineRegisterResponse{PipelineID: existing.ID, Existing: true, Index: ac.index}, nil
	}
	jobIDs, err := validateRegister(tx, p, req.Jobs)
	if err != nil {
		return nil, err
	}

	np := p.Copy()
	np.JobIDs = jobIDs
	np.State = structs.PipelinePending
	np.CancelRequested = false
	np.IdempotencyKey = key
	np.SubmittedAt = ac.ts
	np.FinishedAt = time.Time{}
	if err := tx.UpsertPipeline(np); err != nil {
		return nil, err
	}
	if err := storeIdempotencyKey(tx, req, key, np.ID); err != nil {
		return nil, err
	}
	for _, j := range req.Jobs {
		nj := newJob(j, p.ID, ac.ts)
		if needs := needsOf(nj); len(needs) > 0 {
			nj.Reason = waitingForNeeds(needs)
		} else if err := ac.createEval(nj, structs.TriggerJobRegister, time.Time{}); err != nil {
			return nil, err
		}
		if err := ac.putJob(nj); err != nil {
			return nil, err
		}
		ac.emitJob(structs.TopicJobRequested, nj, func(p *structs.JobEventPayload) { p.Trigger = structs.TriggerJobRegister })
	}
	return ac.done(&structs.PipelineRegisterResponse{PipelineID: np.ID, Index: ac.index})
}

// newJob is the first attempt of a submitted job: the request's spec fields,
// with every runtime field set afresh.
func newJob(j *structs.Job, pipelineID string, ts time.Time) *structs.Job {
	c := j.Copy()
	c.PipelineID = pipelineID
	c.Name = nameOf(j)
	if c.Priority == 0 {
		c.Priority = c.Spec.Priority
	}
	c.State = structs.JobPending
	c.Reason = ""
	c.Attempt = 1
	c.Rescheduled, c.RescheduleAttempts = 0, 0
	c.AllocID, c.NodeID, c.EvalID = "", "", ""
	c.Steps = freshSteps(c.Spec)
	c.RetryAt, c.StartedAt, c.FinishedAt = time.Time{}, time.Time{}, time.Time{}
	c.History = nil
	c.Placement = nil
	c.CreatedAt = ts
	return c
}

// nameOf is a submitted job's name: its own, else its spec's.
func nameOf(j *structs.Job) string {
	if j.Name != "" {
		return j.Name
	}
	return j.Spec.Name
}

// validateRegister checks that the jobs belong to the pipeline and can run,
// and returns the pipeline's job IDs in order.
func validateRegister(tx *state.WriteTxn, p *structs.Pipeline, jobs []*structs.Job) ([]string, error) {
	if len(jobs) == 0 {
		return nil, fmt.Errorf("register pipeline %s: it has no jobs; a pipeline needs at least one", p.ID)
	}
	ids := make([]string, 0, len(jobs))
	names := map[string]bool{}
	for i, j := range jobs {
		switch {
		case j == nil || j.ID == "" || j.Spec == nil:
			return nil, fmt.Errorf("register pipeline %s: job %d has no ID or no spec", p.ID, i)
		case j.PipelineID != "" && j.PipelineID != p.ID:
			return nil, fmt.Errorf("register pipeline %s: job %s belongs to pipeline %s", p.ID, j.ID, j.PipelineID)
		case slices.Contains(ids, j.ID):
			return nil, fmt.Errorf("register pipeline %s: job ID %s is given twice", p.ID, j.ID)
		}
		name := nameOf(j)
		if names[name] {
			return nil, fmt.Errorf("register pipeline %s: job name %q is given twice", p.ID, name)
		}
		if other, err := tx.JobByID(j.ID); err != nil {
			return nil, err
		} else if other != nil {
			return nil, fmt.Errorf("register pipeline %s: job ID %s already belongs to pipeline %s: %w",
				p.ID, j.ID, other.PipelineID, structs.ErrConflict)
		}
		ids = append(ids, j.ID)
		names[name] = true
	}
	for _, j := range jobs {
		for _, need := range j.Spec.Needs {
			if !names[need] || need == nameOf(j) {
				return nil, fmt.Errorf("register pipeline %s: job %s needs %q, which is not another job of the pipeline",
					p.ID, j.ID, need)
			}
		}
	}
	if len(p.JobIDs) > 0 && !slices.Equal(p.JobIDs, ids) {
		return nil, fmt.Errorf("register pipeline %s: its job_ids %v do not match the jobs sent %v", p.ID, p.JobIDs, ids)
	}
	return ids, nil
}

// applyPipelineCancel cancels every job of the pipeline that has not ended,
// cancels their waiting evaluations and asks clients to stop their live
// allocations. Cancelling an unknown pipeline is ErrNotFound; a finished
// one, ErrConflict.
func applyPipelineCancel(tx *state.WriteTxn, req *structs.PipelineCancelRequest) (any, error) {
	ac := newApplyCtx(tx, req.Timestamp)
	p, err := tx.PipelineByID(req.PipelineID)
	if err != nil {
		return nil, err
	}
	if p == nil {
		return nil, fmt.Errorf("pipeline %q: %w", req.PipelineID, structs.ErrNotFound)
	}
	if p.State.Terminal() {
		return nil, fmt.Errorf("%w: pipeline already %s", structs.ErrConflict, p.State)
	}
	reason := req.Reason
	if reason == "" {
		reason = reasonCancelledByUser
	}
	jobs, err := tx.JobsByPipeline(p.ID)
	if err != nil {
		return nil, err
	}
	for _, j := range jobs {
		if j.State.Terminal() {
			continue
		}
		c := j.Copy()
		placed := c.State == structs.JobScheduled || c.State == structs.JobRunning
		if err := move(c, structs.JobCancelled); err != nil {
			return nil, err
		}
		if placed {
			ac.record(c, structs.JobCancelled, reason)
		}
		c.Reason = reason
		c.FinishedAt = ac.ts
		if err := ac.setEvalStatus(c.EvalID, structs.EvalCancelled); err != nil {
			return nil, err
		}
		c.EvalID = ""
		if err := ac.putJob(c); err != nil {
			return nil, err
		}
		ac.emitJob(structs.TopicJobCancelled, c, nil)
		if err := stopAllocs(tx, c.ID); err != nil {
			return nil, err
		}
	}
	pc := p.Copy()
	pc.CancelRequested = true
	if err := tx.UpsertPipeline(pc); err != nil {
		return nil, err
	}
	ac.dirty[p.ID] = true
	return ac.done(nil)
}

// stopAllocs asks the client to stop every live allocation of the job.
func stopAllocs(tx *state.WriteTxn, jobID string) error {
	allocs, err := tx.AllocsByJob(jobID)
	if err != nil {
		return err
	}
	for _, a := range allocs {
		if !a.Live() || a.DesiredStatus == structs.AllocDesiredStop {
			continue
		}
		c := a.Copy()
		c.DesiredStatus = structs.AllocDesiredStop
		if err := tx.UpsertAlloc(c); err != nil {
			return err
		}
	}
	return nil
}
