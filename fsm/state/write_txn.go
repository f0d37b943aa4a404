package state

import (
	"errors"
	"fmt"
	"slices"

	"github.com/hashicorp/go-memdb"

	"github.com/ciplat/ciplat/fsm/structs"
)

// ErrReadOnly is returned by Write on a snapshot: snapshots never change.
var ErrReadOnly = errors.New("state snapshot is read-only")

// WriteTxn is one Raft entry's changes, made inside one memdb transaction.
// Reads through it see the entry's own earlier writes. Upserts set the row's
// CreateIndex (kept from the existing row, else the entry's index) and
// ModifyIndex, and note the table so Write bumps it in the index table.
//
// A WriteTxn is used by one goroutine, only inside the Write callback. The
// store takes ownership of every value upserted: never change it afterwards
// (Copy first).
type WriteTxn struct {
	txn     *memdb.Txn
	index   uint64
	touched map[string]bool
	nodes   map[string]*structs.Node
	// eventCount is the events table's row count as this entry leaves it;
	// eventLimit bounds it (see AppendEvents).
	eventCount int
	eventLimit int
}

// Write runs fn in one write transaction at Raft index index and commits it
// only if fn returns nil: an entry either lands whole or not at all. Every
// table fn changed gets index in the index table, which wakes blocking
// queries on it.
func (s *StateStore) Write(index uint64, fn func(tx *WriteTxn) error) error {
	if s.readOnly {
		return ErrReadOnly
	}
	if index == 0 {
		return fmt.Errorf("write at Raft index 0: indexes start at 1")
	}
	txn := s.db.Txn(true)
	defer txn.Abort() // no-op after Commit; releases the writer lock on error or panic
	tx := &WriteTxn{txn: txn, index: index, touched: map[string]bool{},
		eventCount: int(s.eventCount.Load()), eventLimit: int(s.eventLimit.Load())}
	if err := fn(tx); err != nil {
		return err
	}
	tables := make([]string, 0, len(tx.touched))
	for t := range tx.touched {
		tables = append(tables, t)
	}
	slices.Sort(tables)
	for _, t := range tables {
		if err := txn.Insert(TableIndex, &IndexEntry{Key: t, Value: max(index, indexOf(txn, t))}); err != nil {
			return fmt.Errorf("bump index of %s: %w", t, err)
		}
	}
	nodes := *s.nodes.Load()
	if len(tx.nodes) > 0 {
		nodes = mergeNodes(nodes, tx.nodes)
	}
	s.commitMu.Lock()
	txn.Commit()
	s.nodes.Store(&nodes)
	s.eventCount.Store(int64(tx.eventCount))
	s.commitMu.Unlock()
	return nil
}

// Index is the Raft index of the entry being applied.
func (t *WriteTxn) Index() uint64 { return t.index }

// setIndexes gives a row its Create/ModifyIndex: a new row is created at the
// entry's index, a replaced row keeps its CreateIndex.
func (t *WriteTxn) setIndexes(existed bool, oldCreate uint64, create, modify *uint64) {
	*create = t.index
	if existed {
		*create = oldCreate
	}
	*modify = t.index
}

func (t *WriteTxn) insert(table string, row any) error {
	if err := t.txn.Insert(table, row); err != nil {
		return fmt.Errorf("insert into %s: %w", table, err)
	}
	t.touched[table] = true
	return nil
}

// UpsertPipeline inserts or replaces a pipeline.
func (t *WriteTxn) UpsertPipeline(p *structs.Pipeline) error {
	if p == nil || p.ID == "" {
		return fmt.Errorf("upsert pipeline: missing pipeline or ID")
	}
	old, err := t.PipelineByID(p.ID)
	if err != nil {
		return err
	}
	if old != nil {
		t.setIndexes(true, old.CreateIndex, &p.CreateIndex, &p.ModifyIndex)
	} else {
		t.setIndexes(false, 0, &p.CreateIndex, &p.ModifyIndex)
	}
	return t.insert(TablePipelines, p)
}

// UpsertJob inserts or replaces a job.
func (t *WriteTxn) UpsertJob(j *structs.Job) error {
	if j == nil || j.ID == "" || j.PipelineID == "" {
		return fmt.Errorf("upsert job: missing job, ID or pipeline ID")
	}
	old, err := t.JobByID(j.ID)
	if err != nil {
		return err
	}
	if old != nil {
		t.setIndexes(true, old.CreateIndex, &j.CreateIndex, &j.ModifyIndex)
	} else {
		t.setIndexes(false, 0, &j.CreateIndex, &j.ModifyIndex)
	}
	return t.insert(TableJobs, j)
}

// UpsertAlloc inserts or replaces an allocation.
func (t *WriteTxn) UpsertAlloc(a *structs.Allocation) error {
	if a == nil || a.ID == "" || a.JobID == "" || a.NodeID == "" {
		return fmt.Errorf("upsert allocation: missing allocation, ID, job ID or node ID")
	}
	old, err := t.AllocByID(a.ID)
	if err != nil {
		return err
	}
	if old != nil {
		t.setIndexes(true, old.CreateIndex, &a.CreateIndex, &a.ModifyIndex)
	} else {
		t.setIndexes(false, 0, &a.CreateIndex, &a.ModifyIndex)
	}
	return t.insert(TableAllocs, a)
}

// UpsertNode inserts or replaces a node.
func (t *WriteTxn) UpsertNode(n *structs.Node) error {
	if n == nil || n.ID == "" {
		return fmt.Errorf("upsert node: missing node or ID")
	}
	old, err := t.NodeByID(n.ID)
	if err != nil {
		return err
	}
	if old != nil {
		t.setIndexes(true, old.CreateIndex, &n.CreateIndex, &n.ModifyIndex)
	} else {
		t.setIndexes(false, 0, &n.CreateIndex, &n.ModifyIndex)
	}
	if err := t.insert(TableNodes, n); err != nil {
		return err
	}
	if t.nodes == nil {
		t.nodes = map[string]*structs.Node{}
	}
	t.nodes[n.ID] = n
	return nil
}

// UpsertEval inserts or replaces an evaluation.
func (t *WriteTxn) UpsertEval(e *structs.Evaluation) error {
	if e == nil || e.ID == "" || e.Status == "" {
		return fmt.Errorf("upsert evaluation: missing evaluation, ID or status")
	}
	old, err := t.EvalByID(e.ID)
	if err != nil {
		return err
	}
	if old != nil {
		t.setIndexes(true, old.CreateIndex, &e.CreateIndex, &e.ModifyIndex)
	} else {
		t.setIndexes(false, 0, &e.CreateIndex, &e.ModifyIndex)
	}
	return t.insert(TableEvals, e)
}

// Reads inside the entry. They see the entry's own earlier writes.

// PipelineByID returns the pipeline, or nil.
func (t *WriteTxn) PipelineByID(id string) (*structs.Pipeline, error) {
	return first[structs.Pipeline](t.txn, nil, TablePipelines, "id", id)
}

// JobByID returns the job, or nil.
func (t *WriteTxn) JobByID(id string) (*structs.Job, error) {
	return first[structs.Job](t.txn, nil, TableJobs, "id", id)
}

// JobsByPipeline returns the pipeline's jobs in its JobIDs order.
func (t *WriteTxn) JobsByPipeline(pipelineID string) ([]*structs.Job, error) {
	return jobsByPipeline(t.txn, nil, pipelineID)
}

// AllocByID returns the allocation, or nil.
func (t *WriteTxn) AllocByID(id string) (*structs.Allocation, error) {
	return first[structs.Allocation](t.txn, nil, TableAllocs, "id", id)
}

// AllocsByNode returns the node's allocations, sorted by ID.
func (t *WriteTxn) AllocsByNode(nodeID string) ([]*structs.Allocation, error) {
	return list[structs.Allocation](t.txn, nil, TableAllocs, "node_id", nodeID)
}

// AllocsByJob returns the job's allocations, sorted by ID.
func (t *WriteTxn) AllocsByJob(jobID string) ([]*structs.Allocation, error) {
	return list[structs.Allocation](t.txn, nil, TableAllocs, "job_id", jobID)
}

// NodeByID returns the node, or nil.
func (t *WriteTxn) NodeByID(id string) (*structs.Node, error) {
	return first[structs.Node](t.txn, nil, TableNodes, "id", id)
}

// EvalByID returns the evaluation, or nil.
func (t *WriteTxn) EvalByID(id string) (*structs.Evaluation, error) {
	return first[structs.Evaluation](t.txn, nil, TableEvals, "id", id)
}
