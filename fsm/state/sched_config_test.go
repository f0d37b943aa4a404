package state

import (
	"bytes"
	"testing"
	"time"

	"github.com/hashicorp/go-memdb"

	"github.com/ciplat/ciplat/fsm/structs"
)

func TestStateStore_SchedulerConfig(t *testing.T) {
	s := testStore(t)
	if c, err := s.SchedulerConfig(nil); err != nil || c != nil {
		t.Fatalf("empty store: config %+v, err %v; want none", c, err)
	}
	ws := memdb.NewWatchSet()
	if _, err := s.SchedulerConfig(ws); err != nil {
		t.Fatal(err)
	}
	workers := 3
	put := func(index uint64, c *structs.SchedulerConfig) {
		t.Helper()
		if err := s.Write(index, func(tx *WriteTxn) error { return tx.UpsertSchedulerConfig(c) }); err != nil {
			t.Fatalf("upsert at %d: %v", index, err)
		}
	}
	put(5, &structs.SchedulerConfig{Algorithm: "spread", Workers: &workers})
	if timedOut := ws.Watch(time.After(5 * time.Second)); timedOut {
		t.Fatal("the watch did not fire on the first write")
	}
	put(9, &structs.SchedulerConfig{Algorithm: "binpack", Preemption: true})

	got, err := s.SchedulerConfig(nil)
	if err != nil {
		t.Fatal(err)
	}
	if got.Algorithm != "binpack" || !got.Preemption || got.Workers != nil || got.CreateIndex != 5 || got.ModifyIndex != 9 {
		t.Fatalf("config = %+v; want binpack, preemption, created at 5, modified at 9", got)
	}
	if idx := s.Index(TableSchedulerConfig); idx != 9 {
		t.Fatalf("table index = %d, want 9", idx)
	}
}

// TestStateStore_SchedulerConfigPersistRestore round-trips the singleton
// table through a Raft snapshot.
func TestStateStore_SchedulerConfigPersistRestore(t *testing.T) {
	src := testStore(t)
	workers := 0
	if err := src.Write(4, func(tx *WriteTxn) error {
		return tx.UpsertSchedulerConfig(&structs.SchedulerConfig{Algorithm: "spread", Preemption: true, Workers: &workers})
	}); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := src.Persist(&buf); err != nil {
		t.Fatalf("Persist: %v", err)
	}
	dst, err := Restore(&buf)
	if err != nil {
		t.Fatalf("Restore: %v", err)
	}
	want, _ := src.SchedulerConfig(nil)
	got, _ := dst.SchedulerConfig(nil)
	if jsonOf(t, got) != jsonOf(t, want) || got.Workers == nil || *got.Workers != 0 {
		t.Fatalf("restored config %s, want %s", jsonOf(t, got), jsonOf(t, want))
	}
	if dst.Index(TableSchedulerConfig) != 4 {
		t.Fatalf("restored table index = %d, want 4", dst.Index(TableSchedulerConfig))
	}
}
