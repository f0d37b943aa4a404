package state

import (
	"fmt"
	"testing"
)

// BenchmarkStateSnapshot_Nodes is the scheduler's hot path at 10,000 nodes:
// take a snapshot, list the nodes, read one node's allocations.
func BenchmarkStateSnapshot_Nodes(b *testing.B) {
	s, err := NewStateStore()
	if err != nil {
		b.Fatal(err)
	}
	err = s.Write(1, func(tx *WriteTxn) error {
		for i := range 10_000 {
			if err := tx.UpsertNode(mockNode(fmt.Sprintf("node-%05d", i))); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		snap, _ := s.Snapshot()
		nodes, _ := snap.Nodes()
		if len(nodes) != 10_000 {
			b.Fatalf("%d nodes", len(nodes))
		}
		if _, err := snap.AllocsByNode(nodes[len(nodes)/2].ID); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkStateStore_UpsertNode is one node write at 10,000 nodes: the
// copy-on-write node slice costs O(n) per write.
func BenchmarkStateStore_UpsertNode(b *testing.B) {
	s, _ := NewStateStore()
	for i := range 10_000 {
		_ = s.UpsertNodes(uint64(i+1), mockNode(fmt.Sprintf("node-%05d", i)))
	}
	index := uint64(10_001)
	b.ReportAllocs()
	for b.Loop() {
		if err := s.UpsertNodes(index, mockNode("node-05000")); err != nil {
			b.Fatal(err)
		}
		index++
	}
}
