package state

import (
	"fmt"
	"math"

	"github.com/hashicorp/go-memdb"

	"github.com/ciplat/ciplat/fsm/structs"
)

// DefaultEventLimit is how many events the events table keeps: a bounded
// ring, the oldest pruned in the same transaction that adds new ones, so
// every server prunes the same rows at the same index.
const DefaultEventLimit = 50_000

// indexEventsPruned is the index-table row holding the highest Raft index
// whose events were pruned: a reader that resumes from an older index has
// missed events and must resync.
const indexEventsPruned = "events.pruned"

// AppendEvents stores the entry's events, numbered Seq 0, 1, ... at the
// entry's index, and prunes the oldest events beyond the store's limit.
// The store owns the events afterwards.
func (t *WriteTxn) AppendEvents(events []*structs.Event) error {
	if len(events) == 0 {
		return nil
	}
	for i, e := range events {
		e.Index = t.index
		e.Seq = uint64(i)
		if e.Type == "" {
			e.Type = structs.EventType(e.Topic)
		}
		if err := t.insert(TableEvents, e); err != nil {
			return err
		}
	}
	t.eventCount += len(events)
	if over := t.eventCount - t.eventLimit; t.eventLimit > 0 && over > 0 {
		return t.pruneEvents(over)
	}
	return nil
}

// pruneEvents deletes the n oldest events and records the highest index
// pruned.
func (t *WriteTxn) pruneEvents(n int) error {
	it, err := t.txn.Get(TableEvents, "id")
	if err != nil {
		return fmt.Errorf("prune events: %w", err)
	}
	// Collect first: deleting while iterating a write txn is not safe.
	old := make([]*structs.Event, 0, n)
	for raw := it.Next(); raw != nil && len(old) < n; raw = it.Next() {
		old = append(old, raw.(*structs.Event))
	}
	for _, e := range old {
		if err := t.txn.Delete(TableEvents, e); err != nil {
			return fmt.Errorf("prune event %s: %w", e.ID(), err)
		}
	}
	t.eventCount -= len(old)
	if len(old) == 0 {
		return nil
	}
	pruned := max(old[len(old)-1].Index, indexOf(t.txn, indexEventsPruned))
	if err := t.txn.Insert(TableIndex, &IndexEntry{Key: indexEventsPruned, Value: pruned}); err != nil {
		return fmt.Errorf("record pruned events: %w", err)
	}
	return nil
}

// SetEventLimit changes how many events the table keeps (tests; every
// server of a cluster must use the same limit, so production uses
// DefaultEventLimit). n <= 0 means no limit.
func (s *StateStore) SetEventLimit(n int) { s.eventLimit.Store(int64(n)) }

// EventCount is how many events the table holds.
func (s *StateStore) EventCount() int { return int(s.eventCount.Load()) }

// EventsAfter returns up to limit events that come after the position
// (index, seq), in (Index, Seq) order, and watches the events table so a
// blocking query wakes when new events are stored. Pass seq =
// math.MaxUint64 to start after every event of index. limit <= 0 means no
// limit.
func (s *StateStore) EventsAfter(ws memdb.WatchSet, index, seq uint64, limit int) ([]*structs.Event, error) {
	txn := s.db.Txn(false)
	if ws != nil {
		_, _ = first[IndexEntry](txn, ws, TableIndex, "id", TableEvents)
	}
	from := []any{index, seq + 1}
	if seq == math.MaxUint64 {
		if index == math.MaxUint64 {
			return []*structs.Event{}, nil
		}
		from = []any{index + 1, uint64(0)}
	}
	it, err := txn.LowerBound(TableEvents, "id", from...)
	if err != nil {
		return nil, fmt.Errorf("list events: %w", err)
	}
	out := []*structs.Event{}
	for raw := it.Next(); raw != nil; raw = it.Next() {
		out = append(out, raw.(*structs.Event))
		if limit > 0 && len(out) >= limit {
			break
		}
	}
	return out, nil
}

// EventsPrunedThrough is the highest Raft index whose events were pruned
// from the table, or 0. A reader whose position is below it missed events.
func (s *StateStore) EventsPrunedThrough() uint64 {
	return indexOf(s.db.Txn(false), indexEventsPruned)
}

// OldestEvent returns the oldest event kept, or nil.
func (s *StateStore) OldestEvent() (*structs.Event, error) {
	return first[structs.Event](s.db.Txn(false), nil, TableEvents, "id")
}

// LatestEvent returns the newest event, or nil.
func (s *StateStore) LatestEvent() (*structs.Event, error) {
	raw, err := s.db.Txn(false).Last(TableEvents, "id")
	if err != nil {
		return nil, fmt.Errorf("latest event: %w", err)
	}
	if raw == nil {
		return nil, nil
	}
	return raw.(*structs.Event), nil
}

func countRows(txn *memdb.Txn, table string) (int, error) {
	it, err := txn.Get(table, "id")
	if err != nil {
		return 0, fmt.Errorf("count %s: %w", table, err)
	}
	n := 0
	for raw := it.Next(); raw != nil; raw = it.Next() {
		n++
	}
	return n, nil
}
