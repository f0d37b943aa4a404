package structs

import "time"

// NodeDrainRequest starts, changes or ends a node's drain. A draining node
// gets no new placements; what it runs may finish. With Enable, Deadline
// (zero: none) is when the leader stops what still runs there (a
// NodeDrainDeadlineRequest). Without Enable the drain ends: an operator's
// end makes the node eligible again; Complete (the leader saw the drained
// node empty) leaves it ineligible, as Nomad does, until an operator
// re-enables it.
type NodeDrainRequest struct {
	WriteRequest
	NodeID   string    `json:"node_id"`
	Enable   bool      `json:"enable"`
	Deadline time.Time `json:"deadline,omitzero"`
	Complete bool      `json:"complete,omitempty"`
}

// NodeEligibilityRequest turns scheduling on a node on or off. Running work
// is not touched.
type NodeEligibilityRequest struct {
	WriteRequest
	NodeID   string `json:"node_id"`
	Eligible bool   `json:"eligible"`
}

// NodeDrainDeadlineRequest is proposed by the leader when a draining node's
// deadline passed: every live allocation there is asked to stop and its job
// goes back to PENDING for a placement elsewhere. Such a move is not a
// failure: it does not use up the job's retries (Job.Rescheduled counts it).
// The entry is refused when the node is not draining or its deadline is
// after the entry's timestamp (the drain changed since it was proposed).
type NodeDrainDeadlineRequest struct {
	WriteRequest
	NodeID string `json:"node_id"`
}

// TriggerNodeDrain marks the evaluation of a job moved off a node whose
// drain deadline passed.
const TriggerNodeDrain = "node-drain"
