package fsm

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/ciplat/ciplat/fsm/state"
	"github.com/ciplat/ciplat/fsm/structs"
)

// Job reasons the FSM writes.
const (
	reasonWaitingPlacement = "waiting to be placed"
	reasonCancelledByUser  = "cancelled by user"
)

// applyCtx is one entry being applied: its transaction, its timestamp, and
// the pipelines whose jobs changed (their state is derived again at the end).
type applyCtx struct {
	tx    *state.WriteTxn
	index uint64
	ts    time.Time
	// rules are the entry's WriteRequest.Rules (set by the apply functions
	// whose meaning depends on them).
	rules uint8
	dirty map[string]bool
	// events are the domain events of the entry, stored by done.
	events []*structs.Event
}

func newApplyCtx(tx *state.WriteTxn, ts time.Time) *applyCtx {
	return &applyCtx{tx: tx, index: tx.Index(), ts: ts, dirty: map[string]bool{}}
}

// done derives the state of every pipeline touched by the entry, stores
// the entry's events, then returns resp. Apply functions end with
// `return ac.done(resp)`.
func (ac *applyCtx) done(resp any) (any, error) {
	ids := make([]string, 0, len(ac.dirty))
	for id := range ac.dirty {
		ids = append(ids, id)
	}
	slices.Sort(ids) // map order is random; writes must not be
	for _, id := range ids {
		if err := ac.derivePipeline(id); err != nil {
			return nil, err
		}
	}
	if err := ac.tx.AppendEvents(ac.events); err != nil {
		return nil, err
	}
	return resp, nil
}

// derivePipeline recomputes a pipeline's state from its jobs and writes it
// if it changed, stamping FinishedAt when it becomes terminal.
func (ac *applyCtx) derivePipeline(id string) error {
	p, err := ac.tx.PipelineByID(id)
	if err != nil || p == nil {
		return err
	}
	jobs, err := ac.tx.JobsByPipeline(id)
	if err != nil {
		return err
	}
	states := make([]structs.JobState, len(jobs))
	for i, j := range jobs {
		states[i] = j.State
	}
	next := structs.DerivePipelineState(states, p.CancelRequested)
	if next == p.State {
		return nil
	}
	c := p.Copy()
	c.State = next
	if next.Terminal() && c.FinishedAt.IsZero() {
		c.FinishedAt = ac.ts
	}
	return ac.tx.UpsertPipeline(c)
}

// putJob writes a job (a copy the entry owns) and marks its pipeline for
// derivation.
func (ac *applyCtx) putJob(j *structs.Job) error {
	if err := ac.tx.UpsertJob(j); err != nil {
		return err
	}
	ac.dirty[j.PipelineID] = true
	return nil
}

// move changes a job's state through the one transition table.
func move(j *structs.Job, to structs.JobState) error {
	if err := structs.Transition(j.State, to); err != nil {
		return fmt.Errorf("job %s (%s): %w", j.Name, j.ID, err)
	}
	j.State = to
	return nil
}

// createEval makes the evaluation that will place j, links it to the job and
// says the job is waiting for a placement.
func (ac *applyCtx) createEval(j *structs.Job, trigger string, waitUntil time.Time) error {
	e := &structs.Evaluation{
		ID:          structs.EvalID(ac.index, j.ID),
		JobID:       j.ID,
		PipelineID:  j.PipelineID,
		Priority:    j.Priority,
		Status:      structs.EvalPending,
		TriggeredBy: trigger,
		WaitUntil:   waitUntil,
	}
	j.EvalID = e.ID
	j.Reason = reasonWaitingPlacement
	return ac.tx.UpsertEval(e)
}

// setEvalStatus moves an evaluation that is still waiting (pending or
// blocked) to status; finished evaluations and unknown IDs are left alone.
func (ac *applyCtx) setEvalStatus(id, status string) error {
	if id == "" {
		return nil
	}
	e, err := ac.tx.EvalByID(id)
	if err != nil || e == nil {
		return err
	}
	if e.Status != structs.EvalPending && e.Status != structs.EvalBlocked {
		return nil
	}
	c := e.Copy()
	c.Status = status
	return ac.tx.UpsertEval(c)
}

// record appends the attempt that just ended to the job's history.
func (ac *applyCtx) record(j *structs.Job, st structs.JobState, reason string) {
	ac.recordAs(j, st, reason, "", "")
}

// recordAs is record with what the end led to (kind: structs.AttemptRetry,
// structs.AttemptReschedule or "") and the fault that caused it.
func (ac *applyCtx) recordAs(j *structs.Job, st structs.JobState, reason, kind, cause string) {
	j.History = append(j.History, structs.AttemptRecord{
		Attempt:    j.Attempt,
		AllocID:    j.AllocID,
		NodeID:     j.NodeID,
		State:      st,
		Reason:     reason,
		Kind:       kind,
		Cause:      cause,
		StartedAt:  attemptStart(j),
		FinishedAt: ac.ts,
	})
}

// attemptStart is when the current attempt began: its earliest step start
// as the client reported it, else (first attempt) the job's start.
func attemptStart(j *structs.Job) time.Time {
	var start time.Time
	for _, s := range j.Steps {
		if !s.StartedAt.IsZero() && (start.IsZero() || s.StartedAt.Before(start)) {
			start = s.StartedAt
		}
	}
	if start.IsZero() && j.Attempt == 1 {
		start = j.StartedAt
	}
	return start
}

// retriesLeft reports whether the attempt that just ended may be retried.
func retriesLeft(j *structs.Job) bool {
	return j.Spec != nil && j.Attempt-j.Rescheduled <= j.Spec.Retry.Attempts
}

// retry puts a PENDING job up for its next attempt: a new evaluation that
// waits Backoff × 2^(n−1) for the nth retry.
func (ac *applyCtx) retry(j *structs.Job, reason string) error {
	j.Attempt++
	n := j.Attempt - 1 - j.Rescheduled // drain moves are not retries
	j.AllocID = ""
	j.RetryAt = ac.ts.Add(backoff(j.Spec.Retry.Backoff.D(), n))
	if err := ac.createEval(j, structs.TriggerRetry, j.RetryAt); err != nil {
		return err
	}
	j.Reason = fmt.Sprintf("retry %d of %d after: %s", n, j.Spec.Retry.Attempts, reason)
	ac.emitJob(structs.TopicJobRequested, j, func(p *structs.JobEventPayload) {
		p.Trigger = structs.TriggerRetry
		p.RetryAt = j.RetryAt
		p.Kind = structs.AttemptRetry
	})
	return nil
}

// backoff is base × 2^(n−1), saturating instead of overflowing.
func backoff(base time.Duration, n int) time.Duration {
	d := base
	for i := 1; i < n && d > 0; i++ {
		if d > (1<<62)/2 {
			return 1 << 62
		}
		d *= 2
	}
	return d
}

// failForGood ends a job that failed or was lost with no retry left, and
// skips the jobs that (transitively) need it. j is in its final state.
func (ac *applyCtx) failForGood(j *structs.Job, reason string) error {
	j.FinishedAt = ac.ts
	j.Reason = reason
	if err := ac.putJob(j); err != nil {
		return err
	}
	final := true
	ac.emitJob(structs.TopicJobFailed, j, func(p *structs.JobEventPayload) { p.Final = &final })
	return ac.skipDependents(j)
}

// skipDependents cancels every PENDING job of the pipeline that needs the
// failed job, directly or through other skipped jobs: they can never run.
func (ac *applyCtx) skipDependents(failed *structs.Job) error {
	jobs, err := ac.tx.JobsByPipeline(failed.PipelineID)
	if err != nil {
		return err
	}
	dead := map[string]structs.JobState{failed.Name: failed.State}
	for changed := true; changed; {
		changed = false
		for _, j := range jobs {
			if _, gone := dead[j.Name]; gone || j.State != structs.JobPending {
				continue
			}
			for _, need := range needsOf(j) {
				st, ok := dead[need]
				if !ok {
					continue
				}
				c := j.Copy()
				if err := move(c, structs.JobCancelled); err != nil {
					return err
				}
				c.Reason = fmt.Sprintf("skipped: needs %s which %s", need, st)
				c.FinishedAt = ac.ts
				if err := ac.setEvalStatus(c.EvalID, structs.EvalCancelled); err != nil {
					return err
				}
				c.EvalID = ""
				if err := ac.putJob(c); err != nil {
					return err
				}
				ac.emitJob(structs.TopicJobCancelled, c, nil)
				dead[j.Name] = structs.JobCancelled
				changed = true
				break
			}
		}
	}
	return nil
}

// placeReadyJobs creates an evaluation for every PENDING job of the pipeline
// that has none and whose needs have all SUCCEEDED.
func (ac *applyCtx) placeReadyJobs(pipelineID string) error {
	jobs, err := ac.tx.JobsByPipeline(pipelineID)
	if err != nil {
		return err
	}
	stateOf := make(map[string]structs.JobState, len(jobs))
	for _, j := range jobs {
		stateOf[j.Name] = j.State
	}
	for _, j := range jobs {
		if j.State != structs.JobPending || j.EvalID != "" {
			continue
		}
		ready := true
		for _, need := range needsOf(j) {
			if stateOf[need] != structs.JobSucceeded {
				ready = false
				break
			}
		}
		if !ready {
			continue
		}
		c := j.Copy()
		if err := ac.createEval(c, structs.TriggerNeedsMet, time.Time{}); err != nil {
			return err
		}
		if err := ac.putJob(c); err != nil {
			return err
		}
	}
	return nil
}

func needsOf(j *structs.Job) []string {
	if j.Spec == nil {
		return nil
	}
	return j.Spec.Needs
}

func waitingForNeeds(needs []string) string {
	return "waiting for needs: " + strings.Join(needs, ", ")
}

// freshSteps is one PENDING status per step of the spec, for a new attempt.
func freshSteps(spec *structs.JobSpec) []structs.StepStatus {
	steps := []structs.StepStatus{}
	if spec == nil {
		return steps
	}
	for _, s := range spec.Steps {
		steps = append(steps, structs.StepStatus{Name: s.Name, State: structs.StepPending})
	}
	return steps
}
