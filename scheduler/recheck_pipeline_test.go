package scheduler

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/ciplat/ciplat/fsm/structs"
)

func TestPipelineConflict(t *testing.T) {
	st := spreadCluster() // a1, a2 in zone a; b1 in b; c1 in c; x without a zone
	anti := testJob("self", 1, 1)
	anti.PipelineID, anti.Spec.AntiAffinity = "p", true
	spread := testJob("self", 1, 1)
	spread.PipelineID = "p"
	spread.Spec.Spread = []structs.Spread{{Attr: "label.zone", Weight: 50}}
	zeroWeight := testJob("self", 1, 1)
	zeroWeight.PipelineID = "p"
	zeroWeight.Spec.Spread = []structs.Spread{{Attr: "label.zone", Weight: 0}}
	plain := testJob("self", 1, 1)
	plain.PipelineID = "p"

	finished := pipeAlloc("f", "a1", "p", "lint")
	finished.DesiredStatus, finished.ClientStatus = structs.AllocDesiredStop, structs.AllocClientComplete

	for _, tc := range []struct {
		name   string
		job    *structs.Job
		node   string
		unseen []*structs.Allocation
		want   string // "" for no conflict, else a part of the reason
	}{
		{"anti-affinity: sibling on the node", anti, "a1", []*structs.Allocation{pipeAlloc("s", "a1", "p", "lint")}, "anti_affinity: job lint"},
		{"anti-affinity: sibling elsewhere", anti, "a1", []*structs.Allocation{pipeAlloc("s", "a2", "p", "lint")}, ""},
		{"anti-affinity: other pipeline", anti, "a1", []*structs.Allocation{pipeAlloc("s", "a1", "q", "lint")}, ""},
		{"anti-affinity: own earlier attempt", anti, "a1", []*structs.Allocation{pipeAlloc("s", "a1", "p", "self")}, ""},
		{"anti-affinity: finished sibling", anti, "a1", []*structs.Allocation{finished}, ""},
		{"anti-affinity: nil allocation", anti, "a1", []*structs.Allocation{nil}, ""},
		{"spread: sibling in the same zone", spread, "a1", []*structs.Allocation{pipeAlloc("s", "a2", "p", "lint")}, "label_spread: job lint of the pipeline was placed in label.zone = a (node a2)"},
		{"spread: sibling in another zone", spread, "a1", []*structs.Allocation{pipeAlloc("s", "b1", "p", "lint")}, ""},
		{"spread: sibling on a node without the zone", spread, "a1", []*structs.Allocation{pipeAlloc("s", "x", "p", "lint")}, ""},
		{"spread: chosen node without the zone", spread, "x", []*structs.Allocation{pipeAlloc("s", "x", "p", "lint")}, ""},
		{"spread: sibling on a node gone", spread, "a1", []*structs.Allocation{pipeAlloc("s", "gone", "p", "lint")}, ""},
		{"spread: weight 0 asks nothing", zeroWeight, "a1", []*structs.Allocation{pipeAlloc("s", "a2", "p", "lint")}, ""},
		{"spread: second sibling conflicts", spread, "b1", []*structs.Allocation{pipeAlloc("s", "a2", "p", "lint"), pipeAlloc("t", "b1", "p", "unit")}, "job unit"},
		{"no spread or anti-affinity", plain, "a1", []*structs.Allocation{pipeAlloc("s", "a1", "p", "lint")}, ""},
		{"nothing unseen", anti, "a1", nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reason, ok := PipelineConflict(tc.job, st.node(tc.node), tc.unseen, st.node)
			switch {
			case tc.want == "" && ok:
				t.Errorf("conflict %q, want none", reason)
			case tc.want != "" && !ok:
				t.Errorf("no conflict, want one naming %q", tc.want)
			case tc.want != "" && !strings.Contains(reason, tc.want):
				t.Errorf("reason %q, want it to name %q", reason, tc.want)
			}
		})
	}
	if _, ok := PipelineConflict(anti, nil, []*structs.Allocation{pipeAlloc("s", "a1", "p", "lint")}, st.node); ok {
		t.Error("a nil node reported a conflict")
	}
}

// TestPipelineConflict_ReScoreEnds plays the applier's loop by hand: three
// anti-affinity jobs of one pipeline planned on the same empty snapshot pick
// the same node; the re-check rejects the later two, and each, re-scored on
// state that shows the siblings committed so far, moves to a free node. With
// more jobs than nodes the last one shares a node, and since its plan saw
// every sibling, the re-check lets it through.
func TestPipelineConflict_ReScoreEnds(t *testing.T) {
	for _, nodes := range []int{3, 2} {
		var ns []*structs.Node
		for _, id := range []string{"n1", "n2", "n3"}[:nodes] {
			ns = append(ns, testNode(id, 4000, 4000))
		}
		st := newMemState(ns, nil)
		s := New(Config{Limit: -1})
		rng := rand.New(rand.NewPCG(1, 2))
		var jobs []*structs.Job
		for _, id := range []string{"a", "b", "c"} {
			j := testJob(id, 100, 100)
			j.PipelineID, j.Spec.AntiAffinity = "p", true
			jobs = append(jobs, j)
		}
		// Round 0: every job planned on the empty snapshot.
		plans := make([]*structs.Plan, len(jobs))
		for i, j := range jobs {
			p, err := s.Place(st, testEval(j), j, rng)
			if err != nil || p.Placement == nil {
				t.Fatalf("place %s: %v, %+v", j.ID, err, p)
			}
			plans[i] = p
		}
		if plans[0].Placement.NodeID != plans[1].Placement.NodeID {
			t.Fatalf("the jobs planned on one snapshot picked %s and %s: the test needs them to collide",
				plans[0].Placement.NodeID, plans[1].Placement.NodeID)
		}
		// The applier's loop: a plan's unseen allocations are those
		// committed after its snapshot (log[snapAt[i]:]); a conflicting
		// one is scored again on the state that shows them.
		var log []*structs.Allocation
		snapAt := make([]int, len(jobs))
		committed := map[string]string{} // job → node
		for round := 0; len(committed) < len(jobs); round++ {
			if round > len(jobs) {
				t.Fatalf("%d nodes: still re-scoring after %d rounds: %v", nodes, round, committed)
			}
			for i, j := range jobs {
				if _, done := committed[j.ID]; done {
					continue
				}
				a := plans[i].Placement
				if _, ok := PipelineConflict(j, st.node(a.NodeID), log[snapAt[i]:], st.node); ok {
					p, err := s.Place(st, testEval(j), j, rng)
					if err != nil || p.Placement == nil {
						t.Fatalf("re-place %s: %v", j.ID, err)
					}
					plans[i], snapAt[i] = p, len(log)
					continue
				}
				placed := pipeAlloc("alloc-"+j.ID, a.NodeID, "p", j.ID)
				log = append(log, placed)
				st = st.with(placed)
				committed[j.ID] = a.NodeID
			}
		}
		distinct := map[string]bool{}
		for _, n := range committed {
			distinct[n] = true
		}
		if len(distinct) != nodes {
			t.Errorf("%d nodes: the jobs run on %v, want every node used", nodes, committed)
		}
	}
}
