package scheduler

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/ciplat/ciplat/fsm/structs"
)

// rescheduledOff gives job a history whose attempts a fault ended on the
// nodes.
func rescheduledOff(job *structs.Job, nodes ...string) {
	for i, n := range nodes {
		job.History = append(job.History, structs.AttemptRecord{Attempt: i + 1, NodeID: n,
			State: structs.JobTerminated, Kind: structs.AttemptReschedule, Cause: structs.CauseWorkerLost})
	}
	job.Attempt = len(nodes) + 1
}

// TestScheduler_ReschedulePenalty: a job rescheduled off a node goes to
// another node that fits, even when bin-packing prefers the node it left
// (the fuller one), across many seeds; when only that node fits, it still
// goes there. A plain retry (kind retry) is not steered away.
func TestScheduler_ReschedulePenalty(t *testing.T) {
	st := newMemState([]*structs.Node{
		testNode("n1", 4000, 8192),
		testNode("n2", 4000, 8192),
		testNode("n3", 4000, 8192),
	}, []*structs.Allocation{testAlloc("busy", "n1", 3000, 6000)})
	s := New(Config{Limit: -1}) // every node scored: bin-pack's choice is certain
	for seed := range uint64(50) {
		j := testJob("build", 500, 1024)
		plan, err := s.Place(st, testEval(j), j, rand.New(rand.NewPCG(seed, 7)))
		if err != nil || plan.Placement == nil || plan.Placement.NodeID != "n1" {
			t.Fatalf("seed %d: fresh job on %v (%v), want n1 (bin-pack: the fullest)", seed, plan.Placement, err)
		}
		rescheduledOff(j, "n1")
		plan, err = s.Place(st, testEval(j), j, rand.New(rand.NewPCG(seed, 7)))
		if err != nil || plan.Placement == nil || plan.Placement.NodeID == "n1" {
			t.Fatalf("seed %d: rescheduled job on %+v (%v), want a node other than n1", seed, plan.Placement, err)
		}
		if sc, ok := plan.Offers[0].Scores["reschedule_penalty"]; !ok || sc != 0 {
			t.Fatalf("seed %d: offer scores %v, want reschedule_penalty 0 on the chosen node", seed, plan.Offers[0].Scores)
		}
	}

	// Retries are not steered.
	j := testJob("build", 500, 1024)
	j.History = []structs.AttemptRecord{{Attempt: 1, NodeID: "n1", State: structs.JobFailed, Kind: structs.AttemptRetry}}
	j.Attempt = 2
	if plan, _ := s.Place(st, testEval(j), j, rand.New(rand.NewPCG(1, 1))); plan.Placement.NodeID != "n1" {
		t.Fatalf("retried job on %s, want n1 as before", plan.Placement.NodeID)
	}

	// Only the faulted node fits: it is still used.
	only := newMemState([]*structs.Node{testNode("n1", 4000, 8192), testNode("n2", 200, 256)}, nil)
	j = testJob("build", 500, 1024)
	rescheduledOff(j, "n1")
	if plan, err := s.Place(only, testEval(j), j, rand.New(rand.NewPCG(1, 1))); err != nil || plan.Placement == nil || plan.Placement.NodeID != "n1" {
		t.Fatalf("only n1 fits: placement %+v (%v), want n1", plan.Placement, err)
	}
}

// TestScheduler_ReschedulePenaltyWidens: in a cluster where the default
// sample (log2 of the nodes) could be all penalised nodes, Place keeps
// scoring until it finds one without a penalty.
func TestScheduler_ReschedulePenaltyWidens(t *testing.T) {
	var nodes []*structs.Node
	var failed []string
	for i := range 16 {
		id := fmt.Sprintf("n%02d", i)
		nodes = append(nodes, testNode(id, 4000, 8192))
		if i < 14 {
			failed = append(failed, id)
		}
	}
	st := newMemState(nodes, nil)
	s := New(Config{})
	for seed := range uint64(50) {
		j := testJob("build", 500, 1024)
		rescheduledOff(j, failed...)
		plan, err := s.Place(st, testEval(j), j, rand.New(rand.NewPCG(seed, 3)))
		if err != nil || plan.Placement == nil || (plan.Placement.NodeID != "n14" && plan.Placement.NodeID != "n15") {
			t.Fatalf("seed %d: placed on %+v (%v), want n14 or n15 (the only nodes without a fault)", seed, plan.Placement, err)
		}
	}
}
