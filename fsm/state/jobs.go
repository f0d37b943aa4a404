package state

import (
	"github.com/hashicorp/go-memdb"

	"github.com/ciplat/ciplat/fsm/structs"
)

// JobByID returns the job, or nil when there is none.
func (s *StateStore) JobByID(ws memdb.WatchSet, id string) (*structs.Job, error) {
	return first[structs.Job](s.db.Txn(false), ws, TableJobs, "id", id)
}

// JobByIDPrefix resolves a full or shortened job ID, as users type it. It
// returns an error wrapping structs.ErrNotFound when nothing matches and an
// *AmbiguousPrefixError when several jobs do.
func (s *StateStore) JobByIDPrefix(ws memdb.WatchSet, prefix string) (*structs.Job, error) {
	return byIDPrefix(s.db.Txn(false), ws, TableJobs, "job", prefix,
		func(j *structs.Job) string { return j.ID })
}

// JobsByPipeline returns the pipeline's jobs in the order of its JobIDs (the
// spec order); jobs the pipeline does not list come last, by ID.
func (s *StateStore) JobsByPipeline(ws memdb.WatchSet, pipelineID string) ([]*structs.Job, error) {
	return jobsByPipeline(s.db.Txn(false), ws, pipelineID)
}

// Jobs returns every job, sorted by ID.
func (s *StateStore) Jobs(ws memdb.WatchSet) ([]*structs.Job, error) {
	return list[structs.Job](s.db.Txn(false), ws, TableJobs, "id")
}

func jobsByPipeline(txn *memdb.Txn, ws memdb.WatchSet, pipelineID string) ([]*structs.Job, error) {
	jobs, err := list[structs.Job](txn, ws, TableJobs, "pipeline_id", pipelineID)
	if err != nil {
		return nil, err
	}
	p, err := first[structs.Pipeline](txn, ws, TablePipelines, "id", pipelineID)
	if err != nil || p == nil {
		return jobs, err
	}
	byID := make(map[string]*structs.Job, len(jobs))
	for _, j := range jobs {
		byID[j.ID] = j
	}
	out := make([]*structs.Job, 0, len(jobs))
	for _, id := range p.JobIDs {
		if j, ok := byID[id]; ok {
			out = append(out, j)
			delete(byID, id)
		}
	}
	for _, j := range jobs { // ID order
		if _, ok := byID[j.ID]; ok {
			out = append(out, j)
		}
	}
	return out, nil
}
