package structs

import "time"

// Allocation desired statuses, set by servers.
const (
	AllocDesiredRun  = "run"
	AllocDesiredStop = "stop"
)

// Allocation client statuses, reported by the client running it.
const (
	AllocClientPending  = "pending"
	AllocClientRunning  = "running"
	AllocClientComplete = "complete"
	AllocClientFailed   = "failed"
	AllocClientLost     = "lost"
)

// Allocation binds one attempt of a job to a node: the placement the plan
// applier committed. Its resources count against the node until it ends.
type Allocation struct {
	ID            string    `json:"id"`
	JobID         string    `json:"job_id"`
	PipelineID    string    `json:"pipeline_id"`
	NodeID        string    `json:"node_id"`
	EvalID        string    `json:"eval_id,omitempty"`
	Attempt       int       `json:"attempt"`
	Resources     Resources `json:"resources"`
	DesiredStatus string    `json:"desired_status"`
	ClientStatus  string    `json:"client_status"`
	// Score is the placement score the scheduler gave the chosen node.
	Score float64 `json:"score"`
	// PreemptedBy names the allocation of a higher-priority job this one
	// was evicted for. Its resources count as free at once (its desired
	// status is stop, so the client kills the worker).
	PreemptedBy string    `json:"preempted_by,omitempty"`
	CreatedAt   time.Time `json:"created_at"`
	CreateIndex uint64    `json:"create_index"`
	ModifyIndex uint64    `json:"modify_index"`
}

// Copy returns a copy.
func (a *Allocation) Copy() *Allocation {
	if a == nil {
		return nil
	}
	c := *a
	return &c
}

// Live reports whether the allocation still holds its node's resources. A
// preempted allocation does not, from the entry that evicted it (as in
// Nomad): the scheduler may place the preempting job at once, and clients
// no longer list it, so its worker is stopped.
func (a *Allocation) Live() bool {
	if a.PreemptedBy != "" {
		return false
	}
	if a.DesiredStatus == AllocDesiredStop && a.ClientStatus != AllocClientRunning {
		return false
	}
	switch a.ClientStatus {
	case AllocClientComplete, AllocClientFailed, AllocClientLost:
		return false
	}
	return true
}
