package scheduler

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/ciplat/ciplat/fsm/structs"
)

func TestAttrValues_Distinct(t *testing.T) {
	var c attrValues
	nodes := []*structs.Node{
		testNode("a", 1, 1, "label.zone", "a"), testNode("b", 1, 1, "label.zone", "b"),
		testNode("b2", 1, 1, "label.zone", "b"), testNode("x", 1, 1), nil,
	}
	if got := c.distinct(nodes, "label.zone"); got != 2 {
		t.Fatalf("distinct zones = %d, want 2", got)
	}
	// Cached for the same list: a node changed in place (never done by the
	// state store, which builds a new list) is not seen.
	nodes[3].Attributes["label.zone"] = "c"
	if got := c.distinct(nodes, "label.zone"); got != 2 {
		t.Fatalf("distinct zones on the same list = %d, want the cached 2", got)
	}
	// A new list (a node changed) is counted again.
	next := slices.Clone(nodes)
	if got := c.distinct(next, "label.zone"); got != 3 {
		t.Fatalf("distinct zones on a new list = %d, want 3", got)
	}
	if got := c.distinct(next, "label.rack"); got != 0 {
		t.Fatalf("distinct racks = %d, want 0", got)
	}
	if got := c.distinct(nil, "label.zone"); got != 0 {
		t.Fatalf("distinct zones of no nodes = %d, want 0", got)
	}
}

// TestPipelineCounts_LearnMin: once the pipeline runs on every value of a
// spread attribute, the least-used value is the best a node can offer, and
// a node of it is Best; while a value runs nothing, only that value is.
func TestPipelineCounts_LearnMin(t *testing.T) {
	st := spreadCluster() // p runs a1, a2 (zone a), b1 (zone b); c1 runs another pipeline
	nodes, _ := st.Nodes()
	j := testJob("self", 1, 1)
	j.PipelineID = "p"
	j.Spec.Spread = []structs.Spread{{Attr: "label.zone", Weight: 100}}
	best := func(st *memState, node string) bool {
		t.Helper()
		nodes, _ := st.Nodes()
		pc, err := countPipeline(st, nodes, j)
		if err != nil {
			t.Fatal(err)
		}
		var c attrValues
		pc.learnMin(nodes, j, &c)
		score, _ := labelSpreadScorer{}.Score(st.node(node), j, pc)
		return labelSpreadScorer{}.Best(st.node(node), j, pc, score)
	}
	if best(st, "b1") || !best(st, "c1") || best(st, "x") {
		t.Error("zone c runs nothing of the pipeline: only c1 should be Best")
	}
	full := st.with(pipeAlloc("6", "c1", "p", "deploy")) // now a:2, b:1, c:1
	if best(full, "a1") || !best(full, "b1") || !best(full, "c1") || best(full, "x") {
		t.Error("the pipeline runs in every zone: b1 and c1 (one allocation each) should be Best, a1 (two) and x (no zone) not")
	}
	var c attrValues
	if pc, _ := countPipeline(st, nodes, testJob("plain", 1, 1)); pc != nil {
		t.Fatal("a job without spread or anti-affinity has counts")
	} else {
		pc.learnMin(nodes, j, &c) // nil counts: nothing to learn, no panic
	}
}

// TestPlace_labelSpreadStopsAtLeastUsedValue: a pipeline that runs in every
// zone no longer makes a spread job score AffinityLimit nodes: the sample
// stops at the log2 limit once it has scored a node of the least-used zone,
// and the job goes there.
func TestPlace_labelSpreadStopsAtLeastUsedValue(t *testing.T) {
	var nodes []*structs.Node
	var allocs []*structs.Allocation
	for i := range 1000 {
		id := fmt.Sprintf("n%04d", i)
		nodes = append(nodes, testNode(id, 4000, 8192, "label.zone", []string{"a", "b", "c"}[i%3]))
		if i < 5 { // zones a, b, c, a, b: c is the least used
			allocs = append(allocs, pipeAlloc("p"+id, id, "p", fmt.Sprintf("job-%d", i)))
		}
	}
	st := pipeState{newMemState(nodes, allocs)}
	s := New(Config{})
	j := testJob("new", 10, 10)
	j.PipelineID = "p"
	j.Spec.Spread = []structs.Spread{{Attr: "label.zone", Weight: 100}}
	for seed := range uint64(20) {
		plan, err := s.Place(st, testEval(j), j, rand.New(rand.NewPCG(seed, 0)))
		if err != nil {
			t.Fatal(err)
		}
		if got := plan.Metrics.NodesEvaluated; got >= AffinityLimit {
			t.Errorf("seed %d: evaluated %d nodes, want the sample to stop well before %d", seed, got, AffinityLimit)
		}
		if n := st.node(plan.Placement.NodeID); n.Attributes["label.zone"] != "c" {
			t.Errorf("seed %d: placed in zone %s, want c (one allocation, against two in a and b)", seed, n.Attributes["label.zone"])
		}
	}
}
