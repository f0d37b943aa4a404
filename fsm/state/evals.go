package state

import (
	"github.com/hashicorp/go-memdb"

	"github.com/ciplat/ciplat/fsm/structs"
)

// EvalByID returns the evaluation, or nil when there is none.
func (s *StateStore) EvalByID(ws memdb.WatchSet, id string) (*structs.Evaluation, error) {
	return first[structs.Evaluation](s.db.Txn(false), ws, TableEvals, "id", id)
}

// EvalsByStatus returns the evaluations in one status (structs.EvalPending,
// ...), sorted by ID; a new leader loads its eval broker from it.
func (s *StateStore) EvalsByStatus(ws memdb.WatchSet, status string) ([]*structs.Evaluation, error) {
	return list[structs.Evaluation](s.db.Txn(false), ws, TableEvals, "status", status)
}

// EvalsByJob returns the job's evaluations, sorted by ID.
func (s *StateStore) EvalsByJob(ws memdb.WatchSet, jobID string) ([]*structs.Evaluation, error) {
	return list[structs.Evaluation](s.db.Txn(false), ws, TableEvals, "job_id", jobID)
}

// Evals returns every evaluation, sorted by ID.
func (s *StateStore) Evals(ws memdb.WatchSet) ([]*structs.Evaluation, error) {
	return list[structs.Evaluation](s.db.Txn(false), ws, TableEvals, "id")
}
