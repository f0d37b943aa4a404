package structs

import "time"

// MessageType is the first byte of every Raft log entry; the rest is the JSON
// of the matching request. The list is append-only: never renumber or reuse a
// value, since old logs and snapshots must still replay.
//
// Adding a message type (Nomad's rule, docs/cluster.md "Adding a message
// type"):
//   - take the next free number below IgnoreUnknownTypeFlag (128); the high
//     bit is not part of the number;
//   - add its applier to fsm's appliers map, its name to String, and a seed
//     entry to FuzzApply (TestFuzzApply_SeedsEveryType insists);
//   - decide what a server that does not know the type yet (an older binary,
//     mid rolling upgrade) must do with it. By default it panics: it cannot
//     apply an entry the others applied, and skipping it would leave its
//     state silently different from theirs. Only when skipping is harmless
//     (the entry changes nothing another entry or a reader relies on: a
//     sweep of expired rows, a hint) may the proposer encode the type ORed
//     with IgnoreUnknownTypeFlag, and then an older server logs the entry and
//     skips it. Servers that know the type apply it alike, flag or not.
type MessageType uint8

// IgnoreUnknownTypeFlag is the flag bit of a MessageType: an entry whose
// type carries it may be skipped by a server that does not know the type
// (Nomad's structs.IgnoreUnknownTypeFlag). Without it, an unknown type
// makes Apply panic. Type numbers therefore stay below 128.
const IgnoreUnknownTypeFlag MessageType = 128

// Ignorable reports whether t carries IgnoreUnknownTypeFlag.
func (t MessageType) Ignorable() bool { return t&IgnoreUnknownTypeFlag != 0 }

// Number is t without IgnoreUnknownTypeFlag: the type to dispatch on.
func (t MessageType) Number() MessageType { return t &^ IgnoreUnknownTypeFlag }

// Raft message types.
const (
	PipelineRegisterRequestType  MessageType = 0
	PlanApplyRequestType         MessageType = 1
	AllocClientUpdateRequestType MessageType = 2
	PipelineCancelRequestType    MessageType = 3
	NodeRegisterRequestType      MessageType = 4
	NodeStatusUpdateRequestType  MessageType = 5
	EvalUpdateRequestType        MessageType = 6
	StateRestoreRequestType      MessageType = 7
	NodeDrainRequestType         MessageType = 8
	NodeEligibilityRequestType   MessageType = 9
	NodeDrainDeadlineRequestType MessageType = 10
	// 11 was never assigned; leave it unused.
	SchedulerConfigRequestType MessageType = 12
	WorkerStopRequestType      MessageType = 13
	// IdempotencyKeySweepRequestType removes expired Idempotency-Keys
	// (idempotency.go).
	IdempotencyKeySweepRequestType MessageType = 14
)

// String is the type's name; a flagged type's name ends in "+ignorable".
func (t MessageType) String() string {
	if t.Ignorable() {
		return t.Number().String() + "+ignorable"
	}
	switch t {
	case PipelineRegisterRequestType:
		return "PipelineRegister"
	case PlanApplyRequestType:
		return "PlanApply"
	case AllocClientUpdateRequestType:
		return "AllocClientUpdate"
	case PipelineCancelRequestType:
		return "PipelineCancel"
	case NodeRegisterRequestType:
		return "NodeRegister"
	case NodeStatusUpdateRequestType:
		return "NodeStatusUpdate"
	case EvalUpdateRequestType:
		return "EvalUpdate"
	case StateRestoreRequestType:
		return "StateRestore"
	case NodeDrainRequestType:
		return "NodeDrain"
	case NodeEligibilityRequestType:
		return "NodeEligibility"
	case NodeDrainDeadlineRequestType:
		return "NodeDrainDeadline"
	case SchedulerConfigRequestType:
		return "SchedulerConfig"
	case WorkerStopRequestType:
		return "WorkerStop"
	case IdempotencyKeySweepRequestType:
		return "IdempotencyKeySweep"
	}
	return "Unknown"
}

// WriteRequest carries what every entry needs to apply deterministically: the
// leader's clock at the time the entry was proposed, and the Apply rules it
// asked for. Apply never reads a clock.
type WriteRequest struct {
	Timestamp time.Time `json:"timestamp"`
	// Rules are the Apply rules the proposing server asked for; an entry
	// without it is applied with the rules of the version that wrote it.
	// Raise CurrentRules when an applier changes meaning (see
	// docs/cluster.md, "Apply rules").
	Rules uint8 `json:"rules,omitempty"`
}

// Apply rule versions (WriteRequest.Rules).
const (
	// RulesV0 is an entry written before rules existed: a lost node's jobs
	// are retried (their retry policy), a preempted job is evicted without
	// touching its reschedule policy, and an Idempotency-Key registered
	// without an expiry never expires (IdempotencyNeverExpires).
	RulesV0 uint8 = 0
	// RulesV1 (issue 12): a lost node's jobs are rescheduled (reschedule
	// policy, cause node-lost), a preemption is recorded as a reschedule
	// that does not use up the policy, and a key registered without an
	// expiry expires DefaultIdempotencyTTL after the entry.
	RulesV1 uint8 = 1
	// CurrentRules is what this version's servers stamp on every entry
	// they propose (WriteRequest.StampRules).
	CurrentRules = RulesV1
)

// StampRules sets the entry's Rules to CurrentRules. The server calls it
// on every entry it proposes, just before encoding it.
func (w *WriteRequest) StampRules() { w.Rules = CurrentRules }

// RulesStamper is a Raft request that carries a WriteRequest.
type RulesStamper interface{ StampRules() }

// PipelineRegisterRequest registers a pipeline and its jobs (all PENDING).
// The FSM creates an evaluation for each job that needs nothing. When
// IdempotencyKey is held (not expired) by a pipeline registered from the
// same spec (BodyHash), the entry changes nothing and the response names
// that pipeline; from another spec, the entry is refused with an
// *IdempotencyConflictError. Otherwise the key is stored until
// IdempotencyExpiresAt (see IdempotencyKey).
type PipelineRegisterRequest struct {
	WriteRequest
	Pipeline       *Pipeline `json:"pipeline"`
	Jobs           []*Job    `json:"jobs"`
	IdempotencyKey string    `json:"idempotency_key,omitempty"`
	// BodyHash is SpecHash of the submitted spec, computed at the HTTP edge.
	BodyHash string `json:"body_hash,omitempty"`
	// IdempotencyExpiresAt is when the key expires: the leader's clock plus
	// -idempotency-ttl. Zero means Timestamp + DefaultIdempotencyTTL.
	IdempotencyExpiresAt time.Time `json:"idempotency_expires_at,omitzero"`
}

// PipelineRegisterResponse is what Apply returns for a register entry.
type PipelineRegisterResponse struct {
	PipelineID string
	// Existing is true when the idempotency key matched an earlier pipeline.
	Existing bool
	Index    uint64
}

// PlanApplyRequest commits the placements the plan applier accepted (each
// job PENDING → SCHEDULED with its allocation; the evaluation completes) and
// records evaluations that could not be placed (blocked, with metrics).
type PlanApplyRequest struct {
	WriteRequest
	Allocs  []*Allocation                `json:"allocs,omitempty"`
	Evals   []*Evaluation                `json:"evals,omitempty"`
	Metrics map[string]*PlacementMetrics `json:"metrics,omitempty"` // by job ID
	// Preemptions evict lower-priority allocations to make room for the
	// placements in Allocs; each applies only if its placement commits.
	Preemptions []*Preemption `json:"preemptions,omitempty"`
}

// AllocClientUpdateRequest is a client reporting on an allocation it runs:
// the job moved to RUNNING, a step started or ended, or the attempt ended
// (SUCCEEDED or FAILED). A FAILED attempt with retries left puts the job back
// to PENDING with a delayed evaluation; updates for allocations that are no
// longer their job's current one only change the allocation.
type AllocClientUpdateRequest struct {
	WriteRequest
	Updates []*AllocUpdate `json:"updates"`
}

// AllocUpdate is one allocation's news.
type AllocUpdate struct {
	AllocID      string   `json:"alloc_id"`
	ClientStatus string   `json:"client_status"`
	JobState     JobState `json:"job_state,omitempty"`
	Reason       string   `json:"reason,omitempty"`
	// Cause, on a FAILED report, says the attempt ended by an
	// infrastructure fault the client saw (CauseWorkerLost,
	// CauseCreateFailed), so the job is rescheduled instead of retried.
	// Empty: the job's own failure.
	Cause string       `json:"cause,omitempty"`
	Steps []StepStatus `json:"steps,omitempty"`
	// The worker, when the client knows it: the driver that runs it, the
	// driver's handle ID, the image and the worker's state (creating,
	// running, terminated, failed). Empty fields change nothing.
	Driver      string `json:"driver,omitempty"`
	WorkerID    string `json:"worker_id,omitempty"`
	Image       string `json:"image,omitempty"`
	WorkerState string `json:"worker_state,omitempty"`
}

// PipelineCancelRequest cancels every job of a pipeline that has not ended
// and asks clients to stop their workers.
type PipelineCancelRequest struct {
	WriteRequest
	PipelineID string `json:"pipeline_id"`
	Reason     string `json:"reason,omitempty"`
}

// NodeRegisterRequest adds a node or replaces its record (capacity, drivers,
// attributes), keeping its create index.
type NodeRegisterRequest struct {
	WriteRequest
	Node *Node `json:"node"`
}

// NodeStatusUpdateRequest marks a node ready or down. A down node's live
// allocations become lost and their jobs TERMINATED (then rescheduled per
// their reschedule policy, never their retry policy).
type NodeStatusUpdateRequest struct {
	WriteRequest
	NodeID string `json:"node_id"`
	Status string `json:"status"`
}

// EvalUpdateRequest upserts evaluations (blocked, failed, re-queued).
type EvalUpdateRequest struct {
	WriteRequest
	Evals []*Evaluation `json:"evals"`
}

// StateRestoreRequest replaces the whole cluster state with an operator's
// snapshot (ciplat operator snapshot restore). State is the state store's
// Persist stream, validated by the server before it proposes the entry;
// Apply swaps it in at once, with every table's index set to the entry's.
type StateRestoreRequest struct {
	WriteRequest
	State []byte `json:"state"`
}

// StateRestoreResponse is what Apply returns for a restore entry.
type StateRestoreResponse struct {
	Index uint64
}

// WorkerStopRequest is an operator terminating a worker (DELETE
// /v1/workers/{id}): the allocation gets desired status stop, so its client
// destroys the worker, and the job's attempt ends TERMINATED with Reason,
// then is retried or fails for good per its retry policy. Stopping a worker
// that already ended, or was already stopped, changes nothing.
type WorkerStopRequest struct {
	WriteRequest
	AllocID string `json:"alloc_id"`
	Reason  string `json:"reason,omitempty"`
}
