package state

import (
	"fmt"

	"github.com/hashicorp/go-memdb"

	"github.com/ciplat/ciplat/fsm/structs"
)

// EachPipeline calls fn for every pipeline, newest (highest CreateIndex)
// first, until fn returns false. Unlike Pipelines it builds no slice, so a
// filtered read of 10,000 pipelines allocates nothing per row.
func (s *StateStore) EachPipeline(ws memdb.WatchSet, fn func(*structs.Pipeline) bool) error {
	it, err := s.db.Txn(false).GetReverse(TablePipelines, "create")
	if err != nil {
		return fmt.Errorf("list pipelines: %w", err)
	}
	ws.Add(it.WatchCh())
	for raw := it.Next(); raw != nil; raw = it.Next() {
		if !fn(raw.(*structs.Pipeline)) {
			return nil
		}
	}
	return nil
}
