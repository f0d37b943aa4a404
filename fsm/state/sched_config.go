package state

import (
	"fmt"

	"github.com/hashicorp/go-memdb"

	"github.com/ciplat/ciplat/fsm/structs"
)

// SchedulerConfig returns the scheduler configuration an operator stored,
// or nil when none was (the leader then uses its agent's flags).
func (s *StateStore) SchedulerConfig(ws memdb.WatchSet) (*structs.SchedulerConfig, error) {
	return first[structs.SchedulerConfig](s.db.Txn(false), ws, TableSchedulerConfig, "id", true)
}

// SchedulerConfig returns the stored scheduler configuration, or nil.
func (t *WriteTxn) SchedulerConfig() (*structs.SchedulerConfig, error) {
	return first[structs.SchedulerConfig](t.txn, nil, TableSchedulerConfig, "id", true)
}

// UpsertSchedulerConfig replaces the scheduler configuration, keeping its
// CreateIndex.
func (t *WriteTxn) UpsertSchedulerConfig(c *structs.SchedulerConfig) error {
	if c == nil {
		return fmt.Errorf("upsert scheduler config: missing config")
	}
	old, err := t.SchedulerConfig()
	if err != nil {
		return err
	}
	if old != nil {
		t.setIndexes(true, old.CreateIndex, &c.CreateIndex, &c.ModifyIndex)
	} else {
		t.setIndexes(false, 0, &c.CreateIndex, &c.ModifyIndex)
	}
	return t.insert(TableSchedulerConfig, c)
}
