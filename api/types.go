package api

import (
	"encoding/json"
	"time"
)

// Job and pipeline states as the API reports them.
const (
	StatePending    = "PENDING"
	StateScheduled  = "SCHEDULED"
	StateRunning    = "RUNNING"
	StateSucceeded  = "SUCCEEDED"
	StateFailed     = "FAILED"
	StateCancelled  = "CANCELLED"
	StateTerminated = "TERMINATED"
)

// TerminalState reports whether a job or pipeline state is final.
func TerminalState(s string) bool {
	switch s {
	case StateSucceeded, StateFailed, StateCancelled, StateTerminated:
		return true
	}
	return false
}

// Pipeline is a submitted pipeline with its jobs (GET /v1/pipelines/{id}).
type Pipeline struct {
	ID              string          `json:"id"`
	Name            string          `json:"name"`
	State           string          `json:"state"`
	CancelRequested bool            `json:"cancel_requested,omitempty"`
	IdempotencyKey  string          `json:"idempotency_key,omitempty"`
	JobIDs          []string        `json:"job_ids"`
	Spec            json.RawMessage `json:"spec,omitempty"`
	Jobs            []*Job          `json:"jobs,omitempty"`
	SubmittedAt     time.Time       `json:"submitted_at"`
	FinishedAt      time.Time       `json:"finished_at,omitzero"`
	CreateIndex     uint64          `json:"create_index"`
	ModifyIndex     uint64          `json:"modify_index"`
}

// PipelineStub is one row of GET /v1/pipelines and GET /v1/ui/pipelines,
// and the payload of the WebSocket feed's "pipeline" messages.
type PipelineStub struct {
	ID              string         `json:"id"`
	Name            string         `json:"name"`
	State           string         `json:"state"`
	CancelRequested bool           `json:"cancel_requested,omitempty"`
	Jobs            int            `json:"jobs"`
	JobStates       map[string]int `json:"job_states,omitempty"`
	SubmittedAt     time.Time      `json:"submitted_at"`
	FinishedAt      time.Time      `json:"finished_at,omitzero"`
	CreateIndex     uint64         `json:"create_index"`
	ModifyIndex     uint64         `json:"modify_index"`
}

// Resources are CPU in millicores and memory in MiB.
type Resources struct {
	CPU      int `json:"cpu"`
	MemoryMB int `json:"memory"`
}

// JobSpec is a job as its pipeline spec declares it.
type JobSpec struct {
	Name        string       `json:"name"`
	Image       string       `json:"image,omitempty"`
	Driver      string       `json:"driver,omitempty"`
	Needs       []string     `json:"needs,omitempty"`
	Priority    int          `json:"priority"`
	Resources   Resources    `json:"resources"`
	Constraints []Constraint `json:"constraints,omitempty"`
	Affinities  []Affinity   `json:"affinities,omitempty"`
	// Spread spreads a pipeline's jobs across a node attribute's values.
	Spread []Spread `json:"spread,omitempty"`
	// AntiAffinity avoids nodes running other jobs of the same pipeline.
	AntiAffinity bool        `json:"anti_affinity,omitempty"`
	Retry        RetryPolicy `json:"retry"`
	// Reschedule places the job again after infrastructure faults.
	Reschedule *ReschedulePolicy `json:"reschedule,omitempty"`
	Timeout    string            `json:"timeout,omitempty"`
	Env        map[string]string `json:"env,omitempty"`
	Steps      []StepSpec        `json:"steps"`
}

// Constraint limits where a job may run.
type Constraint struct {
	Attr  string `json:"attr"`
	Op    string `json:"op"`
	Value string `json:"value,omitempty"`
}

// Affinity prefers or avoids nodes.
type Affinity struct {
	Attr   string `json:"attr"`
	Op     string `json:"op"`
	Value  string `json:"value,omitempty"`
	Weight int    `json:"weight"`
}

// Spread prefers nodes whose attribute value runs the fewest allocations of
// the pipeline.
type Spread struct {
	Attr   string `json:"attr"`
	Weight int    `json:"weight"`
}

// RetryPolicy is how often a failed job is retried.
type RetryPolicy struct {
	Attempts int    `json:"attempts"`
	Backoff  string `json:"backoff,omitempty"`
}

// ReschedulePolicy is how often a job an infrastructure fault ended (node
// lost, worker lost, creation failed, preempted) is placed again: Attempts
// times, the nth after Delay × 2^(n−1), at most MaxDelay (Go durations).
type ReschedulePolicy struct {
	Attempts int    `json:"attempts"`
	Delay    string `json:"delay,omitempty"`
	MaxDelay string `json:"max_delay,omitempty"`
}

// Reschedule causes a client reports on a FAILED attempt (AllocUpdate.Cause).
const (
	// CauseWorkerLost: the client restarted or shut down while the attempt
	// ran and cannot re-attach to its worker.
	CauseWorkerLost = "worker-lost"
	// CauseCreateFailed: the worker could not be created (driver missing or
	// unhealthy on this node, CreateWorker failed).
	CauseCreateFailed = "create-failed"
)

// StepSpec is one step of a job.
type StepSpec struct {
	Name    string            `json:"name"`
	Run     string            `json:"run"`
	Env     map[string]string `json:"env,omitempty"`
	Timeout string            `json:"timeout,omitempty"`
}

// Job is the runtime record of one job (GET /v1/jobs/{id}).
type Job struct {
	ID         string            `json:"id"`
	PipelineID string            `json:"pipeline_id"`
	Name       string            `json:"name"`
	Spec       *JobSpec          `json:"spec,omitempty"`
	Env        map[string]string `json:"env,omitempty"`
	Priority   int               `json:"priority"`
	State      string            `json:"state"`
	Reason     string            `json:"reason,omitempty"`
	Attempt    int               `json:"attempt"`
	// Rescheduled counts attempts an infrastructure fault ended (node lost,
	// worker lost, creation failed, preempted, drained); they do not count
	// against the retry policy. RescheduleAttempts counts those that used
	// up the reschedule policy (all but drains).
	Rescheduled        int               `json:"rescheduled,omitempty"`
	RescheduleAttempts int               `json:"reschedule_attempts,omitempty"`
	AllocID            string            `json:"alloc_id,omitempty"`
	NodeID             string            `json:"node_id,omitempty"`
	Steps              []StepStatus      `json:"steps"`
	EvalID             string            `json:"eval_id,omitempty"`
	RetryAt            time.Time         `json:"retry_at,omitzero"`
	History            []AttemptRecord   `json:"history,omitempty"`
	Placement          *PlacementMetrics `json:"placement,omitempty"`
	Explain            string            `json:"explain,omitempty"`
	CreatedAt          time.Time         `json:"created_at"`
	StartedAt          time.Time         `json:"started_at,omitzero"`
	FinishedAt         time.Time         `json:"finished_at,omitzero"`
	CreateIndex        uint64            `json:"create_index"`
	ModifyIndex        uint64            `json:"modify_index"`
}

// Step states.
const (
	StepPending   = "PENDING"
	StepRunning   = "RUNNING"
	StepSucceeded = "SUCCEEDED"
	StepFailed    = "FAILED"
	StepSkipped   = "SKIPPED"
)

// StepStatus is the live record of one step.
type StepStatus struct {
	Name       string    `json:"name"`
	State      string    `json:"state"`
	ExitCode   *int      `json:"exit_code,omitempty"`
	Reason     string    `json:"reason,omitempty"`
	StartedAt  time.Time `json:"started_at,omitzero"`
	FinishedAt time.Time `json:"finished_at,omitzero"`
}

// AttemptRecord is one finished attempt of a job.
type AttemptRecord struct {
	Attempt int    `json:"attempt"`
	AllocID string `json:"alloc_id,omitempty"`
	NodeID  string `json:"node_id,omitempty"`
	State   string `json:"state"`
	Reason  string `json:"reason,omitempty"`
	// Kind is "retry" (the job's own failure, placed again under its retry
	// policy), "reschedule" (an infrastructure fault, placed again under
	// its reschedule policy) or empty (the job ended with this attempt);
	// Cause names the fault (node-lost, worker-lost, create-failed,
	// preempted, drained).
	Kind       string    `json:"kind,omitempty"`
	Cause      string    `json:"cause,omitempty"`
	StartedAt  time.Time `json:"started_at,omitzero"`
	FinishedAt time.Time `json:"finished_at,omitzero"`
}

// PlacementMetrics explain a placement or why there was none.
type PlacementMetrics struct {
	NodesEvaluated int            `json:"nodes_evaluated"`
	NodesFiltered  int            `json:"nodes_filtered"`
	NodesExhausted int            `json:"nodes_exhausted"`
	FilteredBy     map[string]int `json:"filtered_by,omitempty"`
	ExhaustedBy    map[string]int `json:"exhausted_by,omitempty"`
	TopOffers      []Offer        `json:"top_offers,omitempty"`
}

// Offer is one scored candidate node.
type Offer struct {
	NodeID string             `json:"node_id"`
	Score  float64            `json:"score"`
	Scores map[string]float64 `json:"scores,omitempty"`
}

// Node statuses.
const (
	NodeStatusReady = "ready"
	NodeStatusDown  = "down"
)

// Node is a client agent (GET /v1/nodes).
type Node struct {
	ID              string                 `json:"id"`
	Name            string                 `json:"name"`
	Address         string                 `json:"address,omitempty"`
	Status          string                 `json:"status"`
	Eligible        bool                   `json:"eligible"`
	Drain           bool                   `json:"drain,omitempty"`
	DrainDeadline   time.Time              `json:"drain_deadline,omitzero"`
	Resources       Resources              `json:"resources"`
	Reserved        Resources              `json:"reserved"`
	Allocated       *Resources             `json:"allocated,omitempty"`
	Attributes      map[string]string      `json:"attributes,omitempty"`
	Drivers         map[string]*DriverInfo `json:"drivers,omitempty"`
	StatusUpdatedAt time.Time              `json:"status_updated_at"`
	CreateIndex     uint64                 `json:"create_index"`
	ModifyIndex     uint64                 `json:"modify_index"`
}

// DriverInfo is a driver's health on a node.
type DriverInfo struct {
	Detected bool   `json:"detected"`
	Healthy  bool   `json:"healthy"`
	Reason   string `json:"reason,omitempty"`
	Version  string `json:"version,omitempty"`
}

// Allocation desired and client statuses.
const (
	AllocDesiredRun     = "run"
	AllocDesiredStop    = "stop"
	AllocClientPending  = "pending"
	AllocClientRunning  = "running"
	AllocClientComplete = "complete"
	AllocClientFailed   = "failed"
	AllocClientLost     = "lost"
)

// Allocation is one attempt of a job placed on a node.
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
	Score         float64   `json:"score"`
	CreatedAt     time.Time `json:"created_at"`
	CreateIndex   uint64    `json:"create_index"`
	ModifyIndex   uint64    `json:"modify_index"`
	// Job is filled in the client's allocation list so it needs no second read.
	Job *Job `json:"job,omitempty"`
}

// AllocUpdate is a client's report on one allocation (POST /v1/client/allocations).
type AllocUpdate struct {
	AllocID      string `json:"alloc_id"`
	ClientStatus string `json:"client_status"`
	JobState     string `json:"job_state,omitempty"`
	Reason       string `json:"reason,omitempty"`
	// Cause, on a FAILED report, names the infrastructure fault that ended
	// the attempt (CauseWorkerLost, CauseCreateFailed): the servers then
	// reschedule the job instead of retrying it. Empty: the job's own
	// failure.
	Cause string       `json:"cause,omitempty"`
	Steps []StepStatus `json:"steps,omitempty"`
	// The worker: the driver that runs it, the driver's ID for it, the
	// image and its state (WorkerCreating, WorkerRunning, WorkerTerminated,
	// WorkerFailed). Empty fields change nothing.
	Driver      string `json:"driver,omitempty"`
	WorkerID    string `json:"worker_id,omitempty"`
	Image       string `json:"image,omitempty"`
	WorkerState string `json:"worker_state,omitempty"`
}

// LogEntry is one line of step output.
type LogEntry struct {
	JobID   string    `json:"job_id"`
	JobName string    `json:"job_name,omitempty"`
	Step    string    `json:"step"`
	Attempt int       `json:"attempt"`
	Stream  string    `json:"stream"`
	Time    time.Time `json:"time"`
	Line    string    `json:"line"`
	// Seq orders the entries of one job; it starts at 1.
	Seq uint64 `json:"seq,omitempty"`
}

// Evaluation asks the scheduler to place one job.
type Evaluation struct {
	ID                string    `json:"id"`
	JobID             string    `json:"job_id"`
	PipelineID        string    `json:"pipeline_id"`
	Priority          int       `json:"priority"`
	Status            string    `json:"status"`
	TriggeredBy       string    `json:"triggered_by"`
	StatusDescription string    `json:"status_description,omitempty"`
	WaitUntil         time.Time `json:"wait_until,omitzero"`
	CreateIndex       uint64    `json:"create_index"`
	ModifyIndex       uint64    `json:"modify_index"`
}
