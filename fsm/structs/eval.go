package structs

import "time"

// Evaluation statuses.
const (
	EvalPending   = "pending"
	EvalBlocked   = "blocked"
	EvalComplete  = "complete"
	EvalFailed    = "failed"
	EvalCancelled = "cancelled"
)

// Evaluation triggers.
const (
	TriggerJobRegister  = "job-register"
	TriggerNeedsMet     = "needs-met"
	TriggerRetry        = "retry"
	TriggerPlanRejected = "plan-rejected"
)

// Evaluation asks the scheduler to place one job. The leader's broker hands
// pending evaluations to scheduler workers, no earlier than WaitUntil.
type Evaluation struct {
	ID                string    `json:"id"`
	JobID             string    `json:"job_id"`
	PipelineID        string    `json:"pipeline_id"`
	Priority          int       `json:"priority"`
	Status            string    `json:"status"`
	TriggeredBy       string    `json:"triggered_by"`
	StatusDescription string    `json:"status_description,omitempty"`
	WaitUntil         time.Time `json:"wait_until,omitzero"`
	// PreviousEval names the evaluation this one follows up (a failed one).
	PreviousEval string `json:"previous_eval,omitempty"`
	CreateIndex  uint64 `json:"create_index"`
	ModifyIndex  uint64 `json:"modify_index"`
}

// Copy returns a copy.
func (e *Evaluation) Copy() *Evaluation {
	if e == nil {
		return nil
	}
	c := *e
	return &c
}

// Plan is a scheduler's answer to one evaluation: at most one placement for
// the evaluation's job (nil when nothing fits), the offers it weighed and the
// metrics that explain the choice.
type Plan struct {
	EvalID    string            `json:"eval_id"`
	JobID     string            `json:"job_id"`
	Priority  int               `json:"priority"`
	Placement *Allocation       `json:"placement,omitempty"`
	Offers    []Offer           `json:"offers,omitempty"`
	Metrics   *PlacementMetrics `json:"metrics,omitempty"`
	// Preemptions are the lower-priority allocations Placement needs
	// evicted (only when preemption is on and nothing fits otherwise).
	Preemptions []*Preemption `json:"preemptions,omitempty"`
	// SnapshotIndex is the highest index of the allocs, nodes and
	// scheduler-configuration tables in the state snapshot the plan was
	// made on (0: unknown): the snapshot shows every allocation created up
	// to it and none after. The plan applier takes allocations created
	// after it as unseen by the plan when it re-checks spread and
	// anti-affinity (scheduler.PipelineConflict); a worker whose plan found
	// no node checks what changed after it before leaving it blocked.
	SnapshotIndex uint64 `json:"snapshot_index,omitempty"`
}

// Offer is one candidate node the scheduler scored for a placement.
type Offer struct {
	NodeID string             `json:"node_id"`
	Score  float64            `json:"score"`
	Scores map[string]float64 `json:"scores,omitempty"`
}

// PlacementMetrics say why a job went where it went, or why it could not go
// anywhere: how many nodes were looked at and why each rejected one was.
type PlacementMetrics struct {
	NodesEvaluated int `json:"nodes_evaluated"`
	NodesFiltered  int `json:"nodes_filtered"`
	NodesExhausted int `json:"nodes_exhausted"`
	// FilteredBy counts rejected nodes per reason ("constraint label.zone = b",
	// "driver docker not healthy", "node ineligible").
	FilteredBy map[string]int `json:"filtered_by,omitempty"`
	// ExhaustedBy counts nodes that lacked a resource ("cpu", "memory").
	ExhaustedBy map[string]int `json:"exhausted_by,omitempty"`
	// TopOffers are the best scored nodes, best first.
	TopOffers []Offer `json:"top_offers,omitempty"`
}
