package state

import (
	"context"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/hashicorp/go-memdb"

	"github.com/ciplat/ciplat/fsm/structs"
)

// mockEvents returns n job events for one entry.
func mockEvents(n int) []*structs.Event {
	out := make([]*structs.Event, n)
	for i := range out {
		out[i] = &structs.Event{Topic: structs.TopicJobStarted, Key: fmt.Sprintf("j%d", i), PipelineID: "p1",
			JobID: fmt.Sprintf("j%d", i), Payload: []byte(`{"state":"RUNNING"}`), Time: t0}
	}
	return out
}

func appendEvents(t *testing.T, s *StateStore, index uint64, n int) {
	t.Helper()
	if err := s.Write(index, func(tx *WriteTxn) error { return tx.AppendEvents(mockEvents(n)) }); err != nil {
		t.Fatalf("append events at %d: %v", index, err)
	}
}

func eventIDs(evs []*structs.Event) []string {
	out := []string{}
	for _, e := range evs {
		out = append(out, e.ID())
	}
	return out
}

func TestWriteTxn_AppendEvents_NumbersAndOrders(t *testing.T) {
	s := testStore(t)
	appendEvents(t, s, 3, 2)
	appendEvents(t, s, 10, 3)
	appendEvents(t, s, 12, 1)

	all, err := s.EventsAfter(nil, 0, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := fmt.Sprint(eventIDs(all)), "[3-0 3-1 10-0 10-1 10-2 12-0]"; got != want {
		t.Fatalf("events = %s, want %s", got, want)
	}
	if all[0].Type != "JobStarted" {
		t.Fatalf("Type = %q, want JobStarted", all[0].Type)
	}
	tests := []struct {
		index, seq uint64
		limit      int
		want       string
	}{
		{3, 0, 0, "[3-1 10-0 10-1 10-2 12-0]"},
		{3, math.MaxUint64, 0, "[10-0 10-1 10-2 12-0]"},
		{5, math.MaxUint64, 2, "[10-0 10-1]"},
		{10, 1, 0, "[10-2 12-0]"},
		{12, 0, 0, "[]"},
		{math.MaxUint64, math.MaxUint64, 0, "[]"},
	}
	for _, tt := range tests {
		got, err := s.EventsAfter(nil, tt.index, tt.seq, tt.limit)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(eventIDs(got)) != tt.want {
			t.Errorf("EventsAfter(%d, %d, %d) = %v, want %s", tt.index, tt.seq, tt.limit, eventIDs(got), tt.want)
		}
	}
	if got := s.Index(TableEvents); got != 12 {
		t.Fatalf("events table index = %d, want 12", got)
	}
	if last, _ := s.LatestEvent(); last == nil || last.ID() != "12-0" {
		t.Fatalf("LatestEvent = %v", last)
	}
}

func TestWriteTxn_AppendEvents_PrunesOldest(t *testing.T) {
	s := testStore(t)
	s.SetEventLimit(5)
	for i := uint64(1); i <= 4; i++ {
		appendEvents(t, s, i, 2)
	}
	if got := s.EventCount(); got != 5 {
		t.Fatalf("EventCount = %d, want 5", got)
	}
	all, _ := s.EventsAfter(nil, 0, 0, 0)
	if got, want := fmt.Sprint(eventIDs(all)), "[2-1 3-0 3-1 4-0 4-1]"; got != want {
		t.Fatalf("kept %s, want %s", got, want)
	}
	if got := s.EventsPrunedThrough(); got != 2 {
		t.Fatalf("EventsPrunedThrough = %d, want 2", got)
	}
	if old, _ := s.OldestEvent(); old == nil || old.ID() != "2-1" {
		t.Fatalf("OldestEvent = %v, want 2-1", old)
	}
	// A refused entry changes neither the table nor the count.
	err := s.Write(5, func(tx *WriteTxn) error {
		if err := tx.AppendEvents(mockEvents(3)); err != nil {
			return err
		}
		return fmt.Errorf("refused")
	})
	if err == nil || s.EventCount() != 5 {
		t.Fatalf("refused write: err %v, count %d", err, s.EventCount())
	}
}

func TestStateStore_EventsAfter_Blocks(t *testing.T) {
	s := testStore(t)
	appendEvents(t, s, 1, 1)
	got := make(chan []*structs.Event, 1)
	go func() {
		var evs []*structs.Event
		_, _ = s.BlockingQuery(context.Background(), 1, 10*time.Second, func(ws memdb.WatchSet, st *StateStore) (uint64, error) {
			var err error
			evs, err = st.EventsAfter(ws, 1, math.MaxUint64, 0)
			return st.Index(TableEvents), err
		})
		got <- evs
	}()
	appendEvents(t, s, 2, 2)
	select {
	case evs := <-got:
		if fmt.Sprint(eventIDs(evs)) != "[2-0 2-1]" {
			t.Fatalf("woke with %v", eventIDs(evs))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("blocking query on events did not wake")
	}
}
