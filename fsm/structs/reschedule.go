package structs

import "time"

// ReschedulePolicy says how often a job whose attempt ended by an
// infrastructure fault — not by its own steps — is placed again (as Nomad's
// `reschedule` is apart from its `restart`): its node was lost, its client
// restarted or shut down and could not re-attach, its worker could not be
// created, or it was preempted or drained. Such an attempt never uses up the
// retry policy, which is for the job's own failures.
//
// Attempts is how many times the job may be placed again after faults (0: a
// fault ends the job TERMINATED at once). The nth reschedule after a node,
// worker or creation fault waits Delay × 2^(n−1), at most MaxDelay; an
// eviction (preempted, drained) is placed again at once.
type ReschedulePolicy struct {
	Attempts int      `json:"attempts"`
	Delay    Duration `json:"delay"`
	MaxDelay Duration `json:"max_delay"`
}

// Reschedule defaults: a job left without a reschedule block (and every job
// registered before the block existed) gets 3 attempts, 5 s doubling up to
// 1 m.
const (
	DefaultRescheduleAttempts = 3
	DefaultRescheduleDelay    = 5 * time.Second
	DefaultRescheduleMaxDelay = time.Minute
)

// DefaultReschedulePolicy returns the policy of a job that names none.
func DefaultReschedulePolicy() ReschedulePolicy {
	return ReschedulePolicy{
		Attempts: DefaultRescheduleAttempts,
		Delay:    Duration(DefaultRescheduleDelay),
		MaxDelay: Duration(DefaultRescheduleMaxDelay),
	}
}

// ReschedulePolicyOf returns the job's reschedule policy: its own, else the
// default (specs stored before the field existed have none).
func (j *JobSpec) ReschedulePolicyOf() ReschedulePolicy {
	if j == nil || j.Reschedule == nil {
		return DefaultReschedulePolicy()
	}
	return *j.Reschedule
}

// DelayFor is how long the nth reschedule (n ≥ 1) waits: Delay × 2^(n−1),
// capped at MaxDelay (when MaxDelay > 0) and never negative or overflowing.
func (r ReschedulePolicy) DelayFor(n int) time.Duration {
	d := max(r.Delay.D(), 0)
	limit := r.MaxDelay.D()
	for i := 1; i < n && d > 0; i++ {
		if d > (1<<62)/2 {
			d = 1 << 62
			break
		}
		d *= 2
		if limit > 0 && d >= limit {
			break
		}
	}
	if limit > 0 && d > limit {
		d = limit
	}
	return d
}

// Attempt kinds: what an ended attempt led to (AttemptRecord.Kind).
const (
	// AttemptRetry: the job failed on its own (a step, its timeout) and
	// was placed again under its retry policy.
	AttemptRetry = "retry"
	// AttemptReschedule: an infrastructure fault ended the attempt and the
	// job was placed again under its reschedule policy.
	AttemptReschedule = "reschedule"
)

// Reschedule causes: the infrastructure faults that end an attempt without
// being the job's own failure (AttemptRecord.Cause, AllocUpdate.Cause).
const (
	// CauseNodeLost: the node was marked down.
	CauseNodeLost = "node-lost"
	// CauseWorkerLost: the client restarted or shut down while the attempt
	// ran and cannot re-attach to it (a client reports it).
	CauseWorkerLost = "worker-lost"
	// CauseCreateFailed: the client could not create the worker (driver
	// missing or unhealthy, CreateWorker failed; a client reports it).
	CauseCreateFailed = "create-failed"
	// CausePreempted: evicted for a higher-priority job.
	CausePreempted = "preempted"
	// CauseDrained: the node's drain deadline passed.
	CauseDrained = "drained"
)

// ClientCauses are the causes a client may report on a FAILED attempt.
var ClientCauses = []string{CauseWorkerLost, CauseCreateFailed}

// ValidClientCause reports whether a client may report cause ("" is the
// job's own failure).
func ValidClientCause(cause string) bool {
	if cause == "" {
		return true
	}
	for _, c := range ClientCauses {
		if c == cause {
			return true
		}
	}
	return false
}

// TriggerReschedule marks the evaluation that places again a job whose
// attempt a node, worker or creation fault ended.
const TriggerReschedule = "reschedule"
