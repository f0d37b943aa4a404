package state

import (
	"fmt"

	"github.com/hashicorp/go-memdb"

	"github.com/ciplat/ciplat/fsm/structs"
)

// PipelineByID returns the pipeline, or nil when there is none (so a blocking
// query can wait for it to appear).
func (s *StateStore) PipelineByID(ws memdb.WatchSet, id string) (*structs.Pipeline, error) {
	return first[structs.Pipeline](s.db.Txn(false), ws, TablePipelines, "id", id)
}

// PipelineByIDPrefix resolves a full or shortened pipeline ID, as users type
// it. It returns an error wrapping structs.ErrNotFound when nothing matches
// and an *AmbiguousPrefixError when several pipelines do.
func (s *StateStore) PipelineByIDPrefix(ws memdb.WatchSet, prefix string) (*structs.Pipeline, error) {
	return byIDPrefix(s.db.Txn(false), ws, TablePipelines, "pipeline", prefix,
		func(p *structs.Pipeline) string { return p.ID })
}

// Pipelines returns every pipeline, newest (highest CreateIndex) first.
func (s *StateStore) Pipelines(ws memdb.WatchSet) ([]*structs.Pipeline, error) {
	it, err := s.db.Txn(false).GetReverse(TablePipelines, "create")
	if err != nil {
		return nil, fmt.Errorf("list pipelines: %w", err)
	}
	ws.Add(it.WatchCh())
	out := []*structs.Pipeline{}
	for raw := it.Next(); raw != nil; raw = it.Next() {
		out = append(out, raw.(*structs.Pipeline))
	}
	return out, nil
}
