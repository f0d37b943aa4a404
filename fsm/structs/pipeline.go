package structs

import "time"

// Pipeline is a submitted pipeline: its spec, its jobs' IDs in spec order and
// its derived state. Its jobs are rows of their own (Job), linked by PipelineID.
type Pipeline struct {
	ID              string        `json:"id"`
	Name            string        `json:"name"`
	Spec            *PipelineSpec `json:"spec"`
	JobIDs          []string      `json:"job_ids"`
	State           PipelineState `json:"state"`
	CancelRequested bool          `json:"cancel_requested,omitempty"`
	IdempotencyKey  string        `json:"idempotency_key,omitempty"`
	SubmittedAt     time.Time     `json:"submitted_at"`
	FinishedAt      time.Time     `json:"finished_at,omitzero"`
	CreateIndex     uint64        `json:"create_index"`
	ModifyIndex     uint64        `json:"modify_index"`
}

// Copy returns a shallow copy whose slices can be changed freely. The spec is
// shared: it never changes after submit.
func (p *Pipeline) Copy() *Pipeline {
	if p == nil {
		return nil
	}
	c := *p
	c.JobIDs = append([]string(nil), p.JobIDs...)
	return &c
}

// Job is the runtime record of one job of a pipeline.
type Job struct {
	ID         string   `json:"id"`
	PipelineID string   `json:"pipeline_id"`
	Name       string   `json:"name"`
	Spec       *JobSpec `json:"spec"`
	// Env is the pipeline's env merged under the job's own (the job wins).
	Env      map[string]string `json:"env,omitempty"`
	Priority int               `json:"priority"`
	State    JobState          `json:"state"`
	// Reason says why the job is in its state ("waiting for needs: build",
	// "step test exited 1", "skipped: needs build which FAILED").
	Reason string `json:"reason,omitempty"`
	// Attempt counts runs, starting at 1 for the first.
	Attempt int `json:"attempt"`
	// Rescheduled counts the attempts that an infrastructure fault ended
	// (node lost, worker lost, creation failed, preempted, drained): they
	// do not use up the retry policy.
	Rescheduled int `json:"rescheduled,omitempty"`
	// RescheduleAttempts counts the reschedules that used up the reschedule
	// policy (every cause but a drain).
	RescheduleAttempts int `json:"reschedule_attempts,omitempty"`
	// AllocID and NodeID name the current (or last) allocation.
	AllocID string       `json:"alloc_id,omitempty"`
	NodeID  string       `json:"node_id,omitempty"`
	Steps   []StepStatus `json:"steps"`
	// EvalID is the evaluation waiting to place this job, if any.
	EvalID string `json:"eval_id,omitempty"`
	// RetryAt is when a job waiting to be retried or rescheduled may be
	// placed again (its evaluation's WaitUntil; the broker honours it).
	RetryAt time.Time `json:"retry_at,omitzero"`
	// History has one record per finished attempt.
	History []AttemptRecord `json:"history,omitempty"`
	// Placement explains the last placement attempt ("why is this pending?").
	Placement *PlacementMetrics `json:"placement,omitempty"`

	CreatedAt   time.Time `json:"created_at"`
	StartedAt   time.Time `json:"started_at,omitzero"`
	FinishedAt  time.Time `json:"finished_at,omitzero"`
	CreateIndex uint64    `json:"create_index"`
	ModifyIndex uint64    `json:"modify_index"`
}

// Copy returns a deep-enough copy for the FSM to change.
func (j *Job) Copy() *Job {
	if j == nil {
		return nil
	}
	c := *j
	c.Steps = append([]StepStatus(nil), j.Steps...)
	c.History = append([]AttemptRecord(nil), j.History...)
	return &c
}

// StepState is the state of one step in the current attempt.
type StepState string

// Step states.
const (
	StepPending   StepState = "PENDING"
	StepRunning   StepState = "RUNNING"
	StepSucceeded StepState = "SUCCEEDED"
	StepFailed    StepState = "FAILED"
	StepSkipped   StepState = "SKIPPED"
)

// StepStatus is the live record of one step.
type StepStatus struct {
	Name       string    `json:"name"`
	State      StepState `json:"state"`
	ExitCode   *int      `json:"exit_code,omitempty"`
	Reason     string    `json:"reason,omitempty"`
	StartedAt  time.Time `json:"started_at,omitzero"`
	FinishedAt time.Time `json:"finished_at,omitzero"`
}

// AttemptRecord is what one finished attempt of a job did.
type AttemptRecord struct {
	Attempt int      `json:"attempt"`
	AllocID string   `json:"alloc_id,omitempty"`
	NodeID  string   `json:"node_id,omitempty"`
	State   JobState `json:"state"`
	Reason  string   `json:"reason,omitempty"`
	// Kind says what the attempt's end led to: AttemptRetry (the job's own
	// failure, placed again under its retry policy), AttemptReschedule (an
	// infrastructure fault, placed again under its reschedule policy), or
	// empty when the job ended with it.
	Kind string `json:"kind,omitempty"`
	// Cause names the infrastructure fault that ended the attempt
	// (CauseNodeLost, ...); empty for the job's own failure.
	Cause      string    `json:"cause,omitempty"`
	StartedAt  time.Time `json:"started_at,omitzero"`
	FinishedAt time.Time `json:"finished_at,omitzero"`
}
