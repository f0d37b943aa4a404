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
	PreemptedBy string `json:"preempted_by,omitempty"`
	// Worker is the worker (container, process group, ...) the client runs
	// this attempt in, as the client reported it. Empty until the client
	// says which driver took it.
	Worker      *WorkerInfo `json:"worker,omitempty"`
	CreatedAt   time.Time   `json:"created_at"`
	CreateIndex uint64      `json:"create_index"`
	ModifyIndex uint64      `json:"modify_index"`
}

// Worker states: the worker of an allocation (one worker per allocation).
const (
	WorkerCreating   = "creating"
	WorkerRunning    = "running"
	WorkerTerminated = "terminated"
	WorkerFailed     = "failed"
)

// WorkerInfo is what a client reported about an allocation's worker.
type WorkerInfo struct {
	// Driver is the name of the driver that runs the worker ("exec", "docker").
	Driver string `json:"driver,omitempty"`
	// HandleID is the driver's ID of the worker (container ID, workspace).
	HandleID string `json:"handle_id,omitempty"`
	Image    string `json:"image,omitempty"`
	// State is creating, running, terminated or failed.
	State  string `json:"state,omitempty"`
	Reason string `json:"reason,omitempty"`
	// StartedAt is when the worker was first reported running; EndedAt
	// when it was first reported terminated or failed.
	StartedAt time.Time `json:"started_at,omitzero"`
	EndedAt   time.Time `json:"ended_at,omitzero"`
	// StopRequested is set when an operator asked to terminate the worker
	// (DELETE /v1/workers/{id}).
	StopRequested bool `json:"stop_requested,omitempty"`
}

// Copy returns a copy.
func (a *Allocation) Copy() *Allocation {
	if a == nil {
		return nil
	}
	c := *a
	if a.Worker != nil {
		w := *a.Worker
		c.Worker = &w
	}
	return &c
}

// WorkerState is the state of the allocation's worker: the one the client
// reported, else one derived from the allocation's statuses.
func (a *Allocation) WorkerState() string {
	if a.Worker != nil && a.Worker.State != "" {
		return a.Worker.State
	}
	switch a.ClientStatus {
	case AllocClientRunning:
		return WorkerRunning
	case AllocClientComplete:
		return WorkerTerminated
	case AllocClientFailed, AllocClientLost:
		return WorkerFailed
	}
	if a.DesiredStatus == AllocDesiredStop || a.PreemptedBy != "" {
		return WorkerTerminated
	}
	return WorkerCreating
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
