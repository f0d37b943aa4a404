package state

import "github.com/ciplat/ciplat/fsm/structs"

// The helpers below each write one kind of row in its own transaction at
// Raft index index. The FSM uses Write directly (one transaction per entry);
// these exist for tests and tools that seed a store.

// UpsertPipeline writes one pipeline.
func (s *StateStore) UpsertPipeline(index uint64, p *structs.Pipeline) error {
	return s.Write(index, func(tx *WriteTxn) error { return tx.UpsertPipeline(p) })
}

// UpsertJobs writes jobs.
func (s *StateStore) UpsertJobs(index uint64, jobs ...*structs.Job) error {
	return s.Write(index, func(tx *WriteTxn) error {
		for _, j := range jobs {
			if err := tx.UpsertJob(j); err != nil {
				return err
			}
		}
		return nil
	})
}

// UpsertAllocs writes allocations.
func (s *StateStore) UpsertAllocs(index uint64, allocs ...*structs.Allocation) error {
	return s.Write(index, func(tx *WriteTxn) error {
		for _, a := range allocs {
			if err := tx.UpsertAlloc(a); err != nil {
				return err
			}
		}
		return nil
	})
}

// UpsertNodes writes nodes.
func (s *StateStore) UpsertNodes(index uint64, nodes ...*structs.Node) error {
	return s.Write(index, func(tx *WriteTxn) error {
		for _, n := range nodes {
			if err := tx.UpsertNode(n); err != nil {
				return err
			}
		}
		return nil
	})
}

// UpsertEvals writes evaluations.
func (s *StateStore) UpsertEvals(index uint64, evals ...*structs.Evaluation) error {
	return s.Write(index, func(tx *WriteTxn) error {
		for _, e := range evals {
			if err := tx.UpsertEval(e); err != nil {
				return err
			}
		}
		return nil
	})
}
