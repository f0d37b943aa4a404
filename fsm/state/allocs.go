package state

import (
	"github.com/hashicorp/go-memdb"

	"github.com/ciplat/ciplat/fsm/structs"
)

// AllocByID returns the allocation, or nil when there is none.
func (s *StateStore) AllocByID(ws memdb.WatchSet, id string) (*structs.Allocation, error) {
	return first[structs.Allocation](s.db.Txn(false), ws, TableAllocs, "id", id)
}

// AllocsByNode returns every allocation placed on the node, live or not,
// sorted by ID. A client agent blocks on it to see new work.
func (s *StateStore) AllocsByNode(ws memdb.WatchSet, nodeID string) ([]*structs.Allocation, error) {
	return list[structs.Allocation](s.db.Txn(false), ws, TableAllocs, "node_id", nodeID)
}

// AllocsByJob returns every allocation (one per placed attempt) of the job,
// sorted by ID.
func (s *StateStore) AllocsByJob(ws memdb.WatchSet, jobID string) ([]*structs.Allocation, error) {
	return list[structs.Allocation](s.db.Txn(false), ws, TableAllocs, "job_id", jobID)
}

// AllocsByPipeline returns every allocation of the pipeline's jobs, live or
// not, sorted by ID.
func (s *StateStore) AllocsByPipeline(ws memdb.WatchSet, pipelineID string) ([]*structs.Allocation, error) {
	return list[structs.Allocation](s.db.Txn(false), ws, TableAllocs, "pipeline_id", pipelineID)
}

// Allocs returns every allocation, sorted by ID.
func (s *StateStore) Allocs(ws memdb.WatchSet) ([]*structs.Allocation, error) {
	return list[structs.Allocation](s.db.Txn(false), ws, TableAllocs, "id")
}
