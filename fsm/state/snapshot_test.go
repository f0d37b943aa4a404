package state

import (
	"errors"
	"slices"
	"testing"

	"github.com/ciplat/ciplat/fsm/structs"
)

// scheduler's view of the state, as the scheduler package declares it.
type schedulerState interface {
	Nodes() ([]*structs.Node, error)
	AllocsByNode(nodeID string) ([]*structs.Allocation, error)
}

var _ schedulerState = (*StateSnapshot)(nil)

func TestStateStore_Snapshot_Isolation(t *testing.T) {
	s := testStore(t)
	_ = s.UpsertNodes(1, mockNode("n1"), mockNode("n3"))
	_ = s.UpsertPipeline(2, mockPipeline("p1"))
	_ = s.UpsertAllocs(3, mockAlloc("a1", "j1", "n1"))

	snap, err := s.Snapshot()
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}

	// Writes after the snapshot.
	down := mockNode("n1")
	down.Status = structs.NodeStatusDown
	_ = s.UpsertNodes(4, down, mockNode("n2"))
	_ = s.UpsertPipeline(5, mockPipeline("p2"))
	_ = s.UpsertAllocs(6, mockAlloc("a2", "j2", "n1"))

	nodes, _ := snap.Nodes()
	if got, want := ids(nodes, nodeID), []string{"n1", "n3"}; !slices.Equal(got, want) {
		t.Fatalf("snapshot Nodes() = %v, want %v", got, want)
	}
	if nodes[0].Status != structs.NodeStatusReady {
		t.Fatalf("snapshot sees the later node update")
	}
	if n, _ := snap.NodeByID(nil, "n1"); n.Status != structs.NodeStatusReady {
		t.Fatalf("snapshot NodeByID sees the later node update")
	}
	allocs, _ := snap.AllocsByNode("n1")
	if got, want := ids(allocs, allocID), []string{"a1"}; !slices.Equal(got, want) {
		t.Fatalf("snapshot AllocsByNode = %v, want %v", got, want)
	}
	if p, _ := snap.PipelineByID(nil, "p2"); p != nil {
		t.Fatalf("snapshot sees pipeline p2 written after it")
	}
	if got := snap.LatestIndex(); got != 3 {
		t.Fatalf("snapshot LatestIndex = %d, want 3", got)
	}

	// The live store and a new snapshot see everything.
	live, _ := s.Nodes(nil)
	if got, want := ids(live, nodeID), []string{"n1", "n2", "n3"}; !slices.Equal(got, want) {
		t.Fatalf("store Nodes = %v, want %v", got, want)
	}
	snap2, _ := s.Snapshot()
	nodes2, _ := snap2.Nodes()
	if got, want := ids(nodes2, nodeID), []string{"n1", "n2", "n3"}; !slices.Equal(got, want) || nodes2[0].Status != structs.NodeStatusDown {
		t.Fatalf("new snapshot Nodes() = %v (n1 %s), want %v with n1 down", got, nodes2[0].Status, want)
	}

	if err := snap.UpsertNodes(7, mockNode("n9")); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("write to a snapshot = %v, want ErrReadOnly", err)
	}
}

// TestStateStore_Snapshot_ConcurrentWrites takes snapshots while nodes are
// written and checks each snapshot's cached node slice matches its table.
func TestStateStore_Snapshot_ConcurrentWrites(t *testing.T) {
	s := testStore(t)
	const writes = 200
	done := make(chan error, 1)
	go func() {
		for i := range writes {
			n := mockNode(string(rune('a'+i%26)) + "-" + string(rune('a'+i/26)))
			if err := s.UpsertNodes(uint64(i+1), n); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	for finished := false; !finished; {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("UpsertNodes: %v", err)
			}
			finished = true
		default:
		}
		snap, _ := s.Snapshot()
		cached, _ := snap.Nodes()
		table, _ := snap.StateStore.Nodes(nil)
		if got, want := ids(cached, nodeID), ids(table, nodeID); !slices.Equal(got, want) {
			t.Fatalf("snapshot node cache %v != table %v", got, want)
		}
	}
}
