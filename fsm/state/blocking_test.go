package state

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hashicorp/go-memdb"

	"github.com/ciplat/ciplat/fsm/structs"
)

type queryResult struct {
	index    uint64
	err      error
	pipeline *structs.Pipeline
}

// watchPipeline starts a blocking query for pipeline id above minIndex. It
// returns once the query has run once (so it is waiting), with a channel for
// the final result.
func watchPipeline(t *testing.T, ctx context.Context, s *StateStore, minIndex uint64, timeout time.Duration, id string) <-chan queryResult {
	t.Helper()
	ran := make(chan struct{}, 1)
	done := make(chan queryResult, 1)
	go func() {
		var p *structs.Pipeline
		index, err := s.BlockingQuery(ctx, minIndex, timeout, func(ws memdb.WatchSet, s *StateStore) (uint64, error) {
			defer func() {
				select {
				case ran <- struct{}{}:
				default:
				}
			}()
			var err error
			p, err = s.PipelineByID(ws, id)
			return s.Index(TablePipelines), err
		})
		done <- queryResult{index: index, err: err, pipeline: p}
	}()
	select {
	case <-ran:
	case <-time.After(10 * time.Second):
		t.Fatalf("blocking query never ran")
	}
	return done
}

func waitResult(t *testing.T, done <-chan queryResult) queryResult {
	t.Helper()
	select {
	case r := <-done:
		return r
	case <-time.After(10 * time.Second):
		t.Fatalf("blocking query did not return")
		return queryResult{}
	}
}

func TestStateStore_BlockingQuery_WakesOnWrite(t *testing.T) {
	s := testStore(t)
	if err := s.UpsertPipeline(5, mockPipeline("other")); err != nil {
		t.Fatalf("UpsertPipeline: %v", err)
	}
	done := watchPipeline(t, context.Background(), s, 5, time.Minute, "p1")

	if err := s.UpsertPipeline(6, mockPipeline("p1")); err != nil {
		t.Fatalf("UpsertPipeline: %v", err)
	}
	r := waitResult(t, done)
	if r.err != nil || r.index != 6 || r.pipeline == nil || r.pipeline.ID != "p1" {
		t.Fatalf("BlockingQuery = %d, %v, %v; want index 6 and pipeline p1", r.index, r.pipeline, r.err)
	}
}

func TestStateStore_BlockingQuery_ReturnsAtOnce(t *testing.T) {
	s := testStore(t)
	_ = s.UpsertPipeline(3, mockPipeline("p1"))
	tests := []struct {
		name     string
		minIndex uint64
	}{{"no min index", 0}, {"index already above", 2}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			runs := 0
			index, err := s.BlockingQuery(context.Background(), tt.minIndex, time.Hour, func(ws memdb.WatchSet, s *StateStore) (uint64, error) {
				runs++
				return s.Index(TablePipelines), nil
			})
			if err != nil || index != 3 || runs != 1 {
				t.Fatalf("BlockingQuery = %d, %v after %d runs; want 3, nil, 1 run", index, err, runs)
			}
		})
	}
	// An error from run ends the query at once.
	boom := errors.New("boom")
	_, err := s.BlockingQuery(context.Background(), 10, time.Hour, func(memdb.WatchSet, *StateStore) (uint64, error) {
		return 0, boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("BlockingQuery = %v, want boom", err)
	}
}

func TestStateStore_BlockingQuery_Timeout(t *testing.T) {
	s := testStore(t)
	_ = s.UpsertPipeline(4, mockPipeline("p1"))
	start := time.Now()
	done := watchPipeline(t, context.Background(), s, 4, 50*time.Millisecond, "p1")
	r := waitResult(t, done)
	if r.err != nil || r.index != 4 || r.pipeline == nil {
		t.Fatalf("BlockingQuery on timeout = %d, %v, %v; want the current result (4, p1, nil)", r.index, r.pipeline, r.err)
	}
	if waited := time.Since(start); waited < 50*time.Millisecond {
		t.Fatalf("returned after %v, before the 50ms timeout", waited)
	}
}

func TestStateStore_BlockingQuery_ContextCancelled(t *testing.T) {
	s := testStore(t)
	_ = s.UpsertPipeline(4, mockPipeline("p1"))
	ctx, cancel := context.WithCancel(context.Background())
	done := watchPipeline(t, ctx, s, 4, time.Hour, "p1")
	cancel()
	if r := waitResult(t, done); !errors.Is(r.err, context.Canceled) || r.index != 4 {
		t.Fatalf("BlockingQuery = %d, %v; want 4, context.Canceled", r.index, r.err)
	}
}

func TestStateStore_BlockingQuery_FollowsRestore(t *testing.T) {
	old := testStore(t)
	_ = old.UpsertPipeline(4, mockPipeline("p0"))
	done := watchPipeline(t, context.Background(), old, 4, time.Minute, "p1")

	// A newer state arrives by snapshot restore.
	src := testStore(t)
	_ = src.UpsertPipeline(9, mockPipeline("p1"))
	var buf bytes.Buffer
	if err := src.Persist(&buf); err != nil {
		t.Fatalf("Persist: %v", err)
	}
	restored, err := Restore(&buf)
	if err != nil {
		t.Fatalf("Restore: %v", err)
	}
	old.Abandon(restored)

	r := waitResult(t, done)
	if r.err != nil || r.index != 9 || r.pipeline == nil || r.pipeline.ID != "p1" {
		t.Fatalf("BlockingQuery across restore = %d, %v, %v; want 9 and p1 from the new store", r.index, r.pipeline, r.err)
	}
}

func TestStateStore_IndexWatch(t *testing.T) {
	s := testStore(t)
	_ = s.UpsertNodes(2, mockNode("n1"))
	if got := s.IndexWatch(nil, TableNodes); got != 2 {
		t.Fatalf("IndexWatch(nodes) = %d, want 2", got)
	}
	ran := make(chan struct{}, 1)
	done := make(chan uint64, 1)
	go func() {
		index, _ := s.BlockingQuery(context.Background(), 2, time.Minute, func(ws memdb.WatchSet, s *StateStore) (uint64, error) {
			defer func() {
				select {
				case ran <- struct{}{}:
				default:
				}
			}()
			return s.IndexWatch(ws, TableNodes), nil
		})
		done <- index
	}()
	<-ran
	_ = s.UpsertNodes(3, mockNode("n2")) // a row the query never read
	select {
	case index := <-done:
		if index != 3 {
			t.Fatalf("BlockingQuery = %d, want 3", index)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("a write to the table did not wake a query watching its index")
	}
}
