package structs

import "fmt"

// JobState is where a job is in its life. The allowed moves between states
// live only in jobTransitions below; every other move is rejected.
type JobState string

// The job states of DESIGN.md.
const (
	JobPending    JobState = "PENDING"
	JobScheduled  JobState = "SCHEDULED"
	JobRunning    JobState = "RUNNING"
	JobSucceeded  JobState = "SUCCEEDED"
	JobFailed     JobState = "FAILED"
	JobCancelled  JobState = "CANCELLED"
	JobTerminated JobState = "TERMINATED"
)

// AllJobStates lists every state, for exhaustive tests and docs.
var AllJobStates = []JobState{JobPending, JobScheduled, JobRunning, JobSucceeded, JobFailed, JobCancelled, JobTerminated}

// jobTransitions is the one table of legal job moves (DESIGN.md, Table 2):
//
//	PENDING    → SCHEDULED   the plan applier commits a placement
//	PENDING    → CANCELLED   a user cancels, or a job it needs did not succeed (skipped)
//	SCHEDULED  → RUNNING     the worker is created and the first step starts
//	RUNNING    → SUCCEEDED   the last step ended with exit code 0
//	RUNNING    → FAILED      a step failed with no retry left
//	RUNNING    → PENDING     a step failed and the retry policy allows another attempt
//	SCHEDULED, RUNNING → CANCELLED   a user cancels; the worker is terminated
//	SCHEDULED, RUNNING → TERMINATED  an infrastructure fault (node lost, worker
//	                         lost or not created, preempted, drained) or an
//	                         operator's stop ended the attempt
//	TERMINATED → PENDING     in the same entry: rescheduled within the job's
//	                         reschedule policy (a fault), or retried within its
//	                         retry policy (an operator's stop)
var jobTransitions = map[JobState][]JobState{
	JobPending:    {JobScheduled, JobCancelled},
	JobScheduled:  {JobRunning, JobCancelled, JobTerminated},
	JobRunning:    {JobSucceeded, JobFailed, JobPending, JobCancelled, JobTerminated},
	JobTerminated: {JobPending},
}

// CanTransition reports whether a job may move from one state to another.
func CanTransition(from, to JobState) bool {
	for _, s := range jobTransitions[from] {
		if s == to {
			return true
		}
	}
	return false
}

// ErrIllegalTransition is returned (wrapped) for a move the table forbids.
type ErrIllegalTransition struct {
	From, To JobState
}

func (e *ErrIllegalTransition) Error() string {
	return fmt.Sprintf("illegal job transition %s → %s", e.From, e.To)
}

// Transition checks a move and returns *ErrIllegalTransition when it is not allowed.
func Transition(from, to JobState) error {
	if !CanTransition(from, to) {
		return &ErrIllegalTransition{From: from, To: to}
	}
	return nil
}

// Terminal reports whether the job will not move again on its own. A
// TERMINATED job is terminal unless the FSM retries it in the same entry.
func (s JobState) Terminal() bool {
	switch s {
	case JobSucceeded, JobFailed, JobCancelled, JobTerminated:
		return true
	}
	return false
}

// Valid reports whether s is one of the known states.
func (s JobState) Valid() bool {
	for _, k := range AllJobStates {
		if k == s {
			return true
		}
	}
	return false
}

// PipelineState is derived from the states of a pipeline's jobs.
type PipelineState string

// Pipeline states.
const (
	PipelinePending   PipelineState = "PENDING"
	PipelineRunning   PipelineState = "RUNNING"
	PipelineSucceeded PipelineState = "SUCCEEDED"
	PipelineFailed    PipelineState = "FAILED"
	PipelineCancelled PipelineState = "CANCELLED"
)

// Terminal reports whether the pipeline has finished.
func (s PipelineState) Terminal() bool {
	return s == PipelineSucceeded || s == PipelineFailed || s == PipelineCancelled
}

// DerivePipelineState computes a pipeline's state from its jobs' states.
// cancelRequested is true once a user asked to cancel the pipeline.
//
//	some job not terminal: RUNNING if any job left PENDING or finished, else PENDING
//	all terminal: CANCELLED if a user cancelled it, FAILED if any job failed or
//	was terminated, CANCELLED if any was cancelled, else SUCCEEDED
func DerivePipelineState(states []JobState, cancelRequested bool) PipelineState {
	allPending, allTerminal := true, true
	failed, cancelled := false, false
	for _, s := range states {
		if s != JobPending {
			allPending = false
		}
		if !s.Terminal() {
			allTerminal = false
		}
		switch s {
		case JobFailed, JobTerminated:
			failed = true
		case JobCancelled:
			cancelled = true
		}
	}
	switch {
	case !allTerminal && allPending:
		return PipelinePending
	case !allTerminal:
		return PipelineRunning
	case cancelRequested:
		return PipelineCancelled
	case failed:
		return PipelineFailed
	case cancelled:
		return PipelineCancelled
	}
	return PipelineSucceeded
}
