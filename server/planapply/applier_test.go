package planapply

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ciplat/ciplat/fsm/state"
	"github.com/ciplat/ciplat/fsm/structs"
)

// applierState is a store with one ready node n1 of 1000 millicores and
// 1024 MiB, and a job "low" (priority 10) running "victim" (500 millicores)
// on it.
func applierState(t *testing.T) *state.StateStore {
	t.Helper()
	st, err := state.NewStateStore()
	if err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(st.UpsertNodes(1, &structs.Node{ID: "n1", Status: structs.NodeStatusReady, Eligible: true,
		Resources: structs.Resources{CPU: 1000, MemoryMB: 1024}}))
	must(st.UpsertJobs(2, &structs.Job{ID: "low", PipelineID: "p", Priority: 10, State: structs.JobScheduled, Spec: &structs.JobSpec{Name: "low"}}))
	must(st.UpsertAllocs(3, &structs.Allocation{ID: "victim", JobID: "low", PipelineID: "p", NodeID: "n1",
		Resources:     structs.Resources{CPU: 500, MemoryMB: 64},
		DesiredStatus: structs.AllocDesiredRun, ClientStatus: structs.AllocClientRunning}))
	return st
}

// placement is a plan of job jobID (priority 50) for cpu millicores on n1.
func placement(jobID string, cpu int, preempt ...string) *structs.Plan {
	p := &structs.Plan{JobID: jobID, EvalID: "e-" + jobID, Priority: 50,
		Placement: &structs.Allocation{JobID: jobID, PipelineID: "p", NodeID: "n1", Resources: structs.Resources{CPU: cpu, MemoryMB: 16}}}
	for _, id := range preempt {
		p.Preemptions = append(p.Preemptions, &structs.Preemption{AllocID: id, Reason: "test"})
	}
	return p
}

// TestBatchCheck_CheckPlacement: each plan is checked against the snapshot
// plus what earlier plans of the batch accepted plus the entries in
// flight; accept is the only step that changes the context.
func TestBatchCheck_CheckPlacement(t *testing.T) {
	snap, err := applierState(t).Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	c := newBatchCheck(snap, nil)
	first := placement("a", 400)
	if err := c.checkPlacement(first); err != nil {
		t.Fatalf("400 of the 500 free: %v", err)
	}
	if err := c.checkPlacement(first); err != nil {
		t.Fatalf("a check changed the context: %v", err)
	}
	c.accept(first, newAlloc(first.Placement, time.Unix(1, 0)))
	if err := c.checkPlacement(placement("b", 200)); !errors.Is(err, ErrConflict) {
		t.Fatalf("200 after the batch took 400 of 500: %v, want ErrConflict", err)
	}
	evicting := placement("c", 200, "victim")
	if err := c.checkPlacement(evicting); err != nil {
		t.Fatalf("200 evicting the 500 of a lower priority: %v", err)
	}
	c.accept(evicting, newAlloc(evicting.Placement, time.Unix(1, 0)))
	if err := c.checkPlacement(placement("d", 100, "victim")); !errors.Is(err, ErrConflict) {
		t.Fatalf("an eviction claimed earlier in the batch: %v, want ErrConflict", err)
	}
	if err := c.checkPlacement(&structs.Plan{JobID: "x", Placement: &structs.Allocation{NodeID: "gone"}}); !errors.Is(err, ErrConflict) {
		t.Fatalf("a node that is gone: %v, want ErrConflict", err)
	}

	f := newInflightPlans()
	f.add(&structs.PlanApplyRequest{Allocs: []*structs.Allocation{{ID: "flying", NodeID: "n1", Resources: structs.Resources{CPU: 450}}},
		Preemptions: []*structs.Preemption{{AllocID: "victim"}}})
	c = newBatchCheck(snap, f.view())
	if err := c.checkPlacement(placement("e", 100)); !errors.Is(err, ErrConflict) {
		t.Fatalf("100 with 450 of 500 in flight: %v, want ErrConflict", err)
	}
	if err := c.checkPlacement(placement("f", 10, "victim")); !errors.Is(err, ErrConflict) {
		t.Fatalf("an eviction in flight: %v, want ErrConflict", err)
	}
}

// TestApplier_Run: the applier needs nothing of the server but its Config.
// A batch's verdicts come once its entry applied, the rejected placement
// gets ErrConflict, the counters count, and a failed entry hands its error
// to every plan it carried.
func TestApplier_Run(t *testing.T) {
	st := applierState(t)
	var m struct{ placements, conflicts, pipeline, applies, blocked, preempt atomic.Uint64 }
	var failNext atomic.Bool
	index := uint64(10) // only the waits, one at a time (release), write it
	proposed := make(chan *structs.PlanApplyRequest, 4)
	release := make(chan struct{})
	q := NewQueue()
	ap := New(Config{
		Queue:    q,
		Snapshot: st.Snapshot,
		Propose: func(req *structs.PlanApplyRequest) (func() (any, error), error) {
			proposed <- req
			fail := failNext.Load()
			return func() (any, error) {
				<-release
				if fail {
					return nil, errors.New("leadership lost")
				}
				// As the FSM: the entry's allocations are in state before
				// its verdicts go out.
				index++
				if err := st.UpsertAllocs(index, req.Allocs...); err != nil {
					return nil, err
				}
				return len(req.Allocs), nil
			}, nil
		},
		Now: func() time.Time { return time.Unix(100, 0) },
		Counters: Counters{Placements: &m.placements, Conflicts: &m.conflicts, PipelineConflicts: &m.pipeline,
			Applies: &m.applies, EvalsBlocked: &m.blocked, Preemptions: &m.preempt},
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); ap.Run(ctx) }()
	defer func() { cancel(); <-done }()

	submit := func(p *structs.Plan) <-chan error {
		verdict := make(chan error, 1)
		if err := q.SubmitAsync(ctx, p, func(err error) { verdict <- err }); err != nil {
			t.Fatal(err)
		}
		return verdict
	}
	a := submit(placement("a", 400))
	req := <-proposed
	if len(req.Allocs) != 1 || req.Allocs[0].ID == "" || !req.Allocs[0].CreatedAt.Equal(time.Unix(100, 0)) ||
		req.Allocs[0].DesiredStatus != structs.AllocDesiredRun {
		t.Fatalf("proposed %+v, want one fresh allocation created at 100", req.Allocs)
	}
	select {
	case err := <-a:
		t.Fatalf("verdict %v before the entry applied", err)
	case <-time.After(20 * time.Millisecond):
	}
	// b does not fit beside a, whether it is checked while a is in flight
	// or once a applied.
	b := submit(placement("b", 200))
	release <- struct{}{}
	if err := <-a; err != nil {
		t.Fatalf("a: %v", err)
	}
	if err := <-b; !errors.Is(err, ErrConflict) {
		t.Fatalf("b: %v, want ErrConflict", err)
	}
	if m.applies.Load() != 1 || m.placements.Load() != 1 || m.conflicts.Load() != 1 {
		t.Fatalf("counters: applies %d placements %d conflicts %d, want 1 1 1", m.applies.Load(), m.placements.Load(), m.conflicts.Load())
	}

	failNext.Store(true)
	c := submit(placement("c", 50))
	<-proposed
	release <- struct{}{}
	if err := <-c; err == nil || err.Error() != "leadership lost" {
		t.Fatalf("c on a failed entry: %v, want its error", err)
	}
	if m.applies.Load() != 1 {
		t.Fatalf("a failed entry was counted applied")
	}
}
