// Package state is ciplat's cluster state: go-memdb tables of pipelines, jobs,
// allocations, nodes and evaluations, plus an index table recording the
// latest Raft index that changed each table.
//
// The FSM is the only writer (one memdb transaction per Raft entry, through
// Write). Everyone else reads, without locks, through methods that take a
// memdb.WatchSet so a reader can block until what it read changes
// (BlockingQuery). Rows returned are shared and read-only: Copy before
// changing one.
package state

import (
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/go-memdb"

	"github.com/ciplat/ciplat/fsm/structs"
)

// StateStore holds the cluster state.
//
// Concurrency: reads may run from any number of goroutines at once, and
// concurrently with a write; they see whole transactions only. Writes
// (Write and the Upsert helpers) are serialised by memdb. After the FSM
// restores a Raft snapshot it builds a new StateStore and calls Abandon on
// the old one: readers should ask the FSM for the current store each time.
type StateStore struct {
	db *memdb.MemDB

	// readOnly is set on point-in-time views (snapshots); Write refuses them.
	readOnly bool

	// commitMu makes "commit the memdb txn and publish the new node slice"
	// one step as seen by Snapshot, so a snapshot's node slice always matches
	// its tables.
	commitMu sync.RWMutex
	// nodes is every node sorted by ID, replaced (never changed in place)
	// whenever the nodes table changes, so a snapshot's Nodes() is O(1).
	nodes atomic.Pointer[[]*structs.Node]
	// eventCount is the events table's row count, kept beside the table
	// (memdb does not count) and replaced on commit with the nodes slice;
	// eventLimit is how many events the table keeps (DefaultEventLimit).
	eventCount atomic.Int64
	eventLimit atomic.Int64

	abandonOnce sync.Once
	abandonCh   chan struct{}
	next        atomic.Pointer[StateStore]
}

// NewStateStore returns an empty store.
func NewStateStore() (*StateStore, error) {
	db, err := memdb.NewMemDB(schema())
	if err != nil {
		return nil, fmt.Errorf("state store schema: %w", err)
	}
	return newStore(db, []*structs.Node{}), nil
}

func newStore(db *memdb.MemDB, nodes []*structs.Node) *StateStore {
	s := &StateStore{db: db, abandonCh: make(chan struct{})}
	s.nodes.Store(&nodes)
	s.eventLimit.Store(DefaultEventLimit)
	return s
}

// view returns a read-only store pinned to the current state: every read on
// it sees the same point in time, and its watch channels still fire when the
// live store changes what was read.
func (s *StateStore) view() *StateStore {
	s.commitMu.RLock()
	db := s.db.Snapshot()
	nodes := s.nodes.Load()
	events := s.eventCount.Load()
	s.commitMu.RUnlock()
	v := newStore(db, *nodes)
	v.eventCount.Store(events)
	v.readOnly = true
	return v
}

// Abandon marks s as replaced by next, after a Raft snapshot restore. Blocking
// queries waiting on s wake up and continue on next. Calling it again has no
// effect.
func (s *StateStore) Abandon(next *StateStore) {
	s.abandonOnce.Do(func() {
		s.next.Store(next)
		close(s.abandonCh)
	})
}

// AbandonCh is closed once the store has been replaced (see Abandon).
func (s *StateStore) AbandonCh() <-chan struct{} { return s.abandonCh }

// Index returns the latest Raft index that changed table, or 0.
func (s *StateStore) Index(table string) uint64 {
	return indexOf(s.db.Txn(false), table)
}

// IndexWatch is Index that also adds the table's index row to ws, so a
// blocking query wakes on any write to the table (e.g. "any allocation or
// node changed") without watching every row.
func (s *StateStore) IndexWatch(ws memdb.WatchSet, table string) uint64 {
	e, err := first[IndexEntry](s.db.Txn(false), ws, TableIndex, "id", table)
	if err != nil || e == nil {
		return 0
	}
	return e.Value
}

// LatestIndex returns the latest Raft index that changed any table, or 0.
func (s *StateStore) LatestIndex() uint64 {
	entries, err := list[IndexEntry](s.db.Txn(false), nil, TableIndex, "id")
	if err != nil {
		return 0
	}
	var latest uint64
	for _, e := range entries {
		latest = max(latest, e.Value)
	}
	return latest
}

// Indexes returns every row of the index table, sorted by table name.
func (s *StateStore) Indexes() ([]*IndexEntry, error) {
	return list[IndexEntry](s.db.Txn(false), nil, TableIndex, "id")
}

func indexOf(txn *memdb.Txn, table string) uint64 {
	e, err := first[IndexEntry](txn, nil, TableIndex, "id", table)
	if err != nil || e == nil {
		return 0
	}
	return e.Value
}
