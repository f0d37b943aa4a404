package structs

import "fmt"

// SchedulerConfig is the cluster's scheduler configuration, stored through
// Raft (SchedulerConfigRequest) so it survives restarts and leader changes.
// Until an operator sets it, each leader uses its agent's flags.
type SchedulerConfig struct {
	// Algorithm is "binpack" (fill the fullest node that fits; the default)
	// or "spread" (prefer the emptiest).
	Algorithm string `json:"algorithm"`
	// Preemption lets a job that fits nowhere evict lower-priority
	// allocations from one node. Off by default.
	Preemption bool `json:"preemption"`
	// Workers is how many scheduler goroutines the leader runs; nil keeps
	// the agent's -scheduler-workers. 0 pauses scheduling: evaluations wait
	// in the broker.
	Workers *int `json:"workers,omitempty"`

	CreateIndex uint64 `json:"create_index"`
	ModifyIndex uint64 `json:"modify_index"`
}

// MaxSchedulerWorkers bounds SchedulerConfig.Workers.
const MaxSchedulerWorkers = 256

// Copy returns a copy whose Workers can be changed.
func (c *SchedulerConfig) Copy() *SchedulerConfig {
	if c == nil {
		return nil
	}
	out := *c
	if c.Workers != nil {
		w := *c.Workers
		out.Workers = &w
	}
	return &out
}

// Validate reports a configuration the scheduler cannot use, naming the
// field and what it accepts.
func (c *SchedulerConfig) Validate() error {
	switch c.Algorithm {
	case "binpack", "spread":
	default:
		return fmt.Errorf("algorithm %q: want \"binpack\" or \"spread\"", c.Algorithm)
	}
	if c.Workers != nil && (*c.Workers < 0 || *c.Workers > MaxSchedulerWorkers) {
		return fmt.Errorf("workers %d: want 0 (pause scheduling) to %d", *c.Workers, MaxSchedulerWorkers)
	}
	return nil
}

// SchedulerConfigRequest replaces the scheduler configuration. With CAS set,
// the entry applies only when the stored configuration's ModifyIndex is
// CASIndex (0: none stored yet); the response says whether it applied.
type SchedulerConfigRequest struct {
	WriteRequest
	Config   *SchedulerConfig `json:"config"`
	CAS      bool             `json:"cas,omitempty"`
	CASIndex uint64           `json:"cas_index,omitempty"`
}

// SchedulerConfigResponse is what Apply returns for a scheduler config entry.
type SchedulerConfigResponse struct {
	// Applied is false when a check-and-set found another index.
	Applied bool
	Index   uint64
}

// Preemption evicts a live allocation of a lower-priority job so that a
// placement of the same plan fits (PlanApplyRequest.Preemptions). It takes
// effect only when that placement commits.
type Preemption struct {
	// AllocID is the allocation evicted.
	AllocID string `json:"alloc_id"`
	// ByAllocID is the new allocation it makes room for.
	ByAllocID string `json:"by_alloc_id"`
	// Reason is what the evicted job's reason says:
	// "preempted by <job> (priority P)".
	Reason string `json:"reason"`
}

// Evaluation triggers of the scheduler's own follow-ups.
const (
	// TriggerPreempted marks the evaluation of a job whose allocation was
	// evicted by a higher-priority job.
	TriggerPreempted = "preempted"
	// TriggerFailedFollowUp marks the evaluation that retries, after a
	// delay, a job whose evaluation failed (delivery limit reached).
	TriggerFailedFollowUp = "failed-follow-up"
)
