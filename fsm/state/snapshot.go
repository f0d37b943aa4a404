package state

import "github.com/ciplat/ciplat/fsm/structs"

// StateSnapshot is a read-only, point-in-time view of the store: the
// scheduler places one evaluation against it without locks while the FSM
// keeps writing, and the FSM persists one for a Raft snapshot.
//
// Design: it embeds a read-only *StateStore over a memdb snapshot, so every
// ws-taking read of StateStore (PipelineByID(ws, id), JobsByPipeline, ...) is
// available unchanged, and Write returns ErrReadOnly. Two reads are shadowed
// by forms without a WatchSet, because a snapshot never changes and because
// the scheduler's State interface declares them so; two more reads are
// added in that form for the scheduler's optional interfaces:
//
//	Nodes() ([]*structs.Node, error)            O(1): the sorted slice cached at snapshot time
//	AllocsByNode(nodeID string) ([]*structs.Allocation, error)
//	AllocsByPipeline(pipelineID string) ([]*structs.Allocation, error)  (scheduler.PipelineState)
//	Job(id string) (*structs.Job, error)        JobByID(nil, id)        (scheduler.PreemptionState)
//
// The ws forms stay reachable as snap.StateStore.Nodes(ws) and
// snap.StateStore.AllocsByNode(ws, id).
type StateSnapshot struct {
	*StateStore
}

// Snapshot returns a point-in-time view. It is cheap (a root pointer and the
// cached node slice), so the FSM may call it from Raft's Snapshot.
func (s *StateStore) Snapshot() (*StateSnapshot, error) {
	return &StateSnapshot{StateStore: s.view()}, nil
}

// Nodes returns every node sorted by ID, in O(1). The slice and the nodes are
// shared by every snapshot taken between the same two node writes: never
// change, sort or shuffle it in place (copy it first).
func (s *StateSnapshot) Nodes() ([]*structs.Node, error) {
	return *s.nodes.Load(), nil
}

// AllocsByNode returns every allocation on the node, live or not, sorted by ID.
func (s *StateSnapshot) AllocsByNode(nodeID string) ([]*structs.Allocation, error) {
	return s.StateStore.AllocsByNode(nil, nodeID)
}

// AllocsByPipeline returns every allocation of the pipeline, live or not,
// sorted by ID: one lookup on the allocs table's pipeline_id index. The
// scheduler uses it for spread and anti-affinity.
func (s *StateSnapshot) AllocsByPipeline(pipelineID string) ([]*structs.Allocation, error) {
	return s.StateStore.AllocsByPipeline(nil, pipelineID)
}

// Job returns the job with the ID, or nil when there is none: JobByID
// without a WatchSet. Preemption reads the priority of each allocation's job
// through it.
func (s *StateSnapshot) Job(id string) (*structs.Job, error) {
	return s.JobByID(nil, id)
}
