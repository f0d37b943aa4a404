package scheduler

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/ciplat/ciplat/fsm/structs"
)

// pipeAlloc is a live allocation of job jobID of pipeline p on the node.
func pipeAlloc(id, nodeID, p, jobID string) *structs.Allocation {
	a := testAlloc(id, nodeID, 100, 100)
	a.PipelineID, a.JobID = p, jobID
	return a
}

// pipeState is a memState that also implements PipelineState.
type pipeState struct{ *memState }

func (s pipeState) AllocsByPipeline(id string) ([]*structs.Allocation, error) {
	var out []*structs.Allocation
	for _, list := range s.allocs {
		for _, a := range list {
			if a.PipelineID == id {
				out = append(out, a)
			}
		}
	}
	return out, nil
}

func spreadCluster() *memState {
	nodes := []*structs.Node{
		testNode("a1", 1000, 1000, "label.zone", "a", "label.rack", "r1"),
		testNode("a2", 1000, 1000, "label.zone", "a", "label.rack", "r2"),
		testNode("b1", 1000, 1000, "label.zone", "b", "label.rack", "r1"),
		testNode("c1", 1000, 1000, "label.zone", "c"),
		testNode("x", 1000, 1000),
	}
	finished := pipeAlloc("done", "c1", "p", "old")
	finished.DesiredStatus, finished.ClientStatus = structs.AllocDesiredStop, structs.AllocClientComplete
	allocs := []*structs.Allocation{
		pipeAlloc("1", "a1", "p", "build"),
		pipeAlloc("2", "a2", "p", "lint"),
		pipeAlloc("3", "b1", "p", "unit"),
		pipeAlloc("4", "c1", "q", "other"), // another pipeline
		finished,                           // not live
		pipeAlloc("5", "a1", "p", "self"),  // the job's own earlier attempt
	}
	return newMemState(nodes, allocs)
}

func TestCountPipeline(t *testing.T) {
	job := testJob("self", 1, 1)
	job.PipelineID = "p"
	job.Spec.Spread = []structs.Spread{{Attr: "label.zone", Weight: 50}, {Attr: "label.rack", Weight: 50}}
	for name, st := range map[string]State{"AllocsByNode walk": spreadCluster(), "PipelineState": pipeState{spreadCluster()}} {
		t.Run(name, func(t *testing.T) {
			nodes, _ := st.Nodes()
			pc, err := countPipeline(st, nodes, job)
			if err != nil {
				t.Fatal(err)
			}
			if got := pc.byNode; len(got) != 3 || got["a1"] != 1 || got["a2"] != 1 || got["b1"] != 1 {
				t.Errorf("byNode = %v, want a1, a2, b1 once each", got)
			}
			if got := pc.byValue[0]; got["a"] != 2 || got["b"] != 1 || got["c"] != 0 || pc.maxValue[0] != 2 {
				t.Errorf("zone counts = %v max %d, want a:2 b:1 max 2", got, pc.maxValue[0])
			}
			if got := pc.byValue[1]; got["r1"] != 2 || got["r2"] != 1 || pc.maxValue[1] != 2 {
				t.Errorf("rack counts = %v max %d, want r1:2 r2:1 max 2", got, pc.maxValue[1])
			}
		})
	}
	plain := testJob("plain", 1, 1)
	if pc, err := countPipeline(spreadCluster(), nil, plain); pc != nil || err != nil {
		t.Errorf("a job without spread or anti-affinity needs no counts, got %v, %v", pc, err)
	}
}

func TestLabelSpreadScorer_Score(t *testing.T) {
	st := spreadCluster()
	nodes, _ := st.Nodes()
	zone := []structs.Spread{{Attr: "label.zone", Weight: 100}}
	tests := []struct {
		name    string
		node    string
		spread  []structs.Spread
		pipe    string
		want    float64
		applies bool
	}{
		{"no spread", "a1", nil, "p", 0, false},
		{"busiest zone", "a1", zone, "p", 0, true},
		{"half as busy", "b1", zone, "p", 0.5, true},
		{"zone without the pipeline", "c1", zone, "p", 1, true},
		{"node without the label", "x", zone, "p", -1, true},
		{"pipeline runs nowhere yet", "a1", zone, "new", 1, true},
		{"weighted two spreads", "b1", []structs.Spread{{Attr: "label.zone", Weight: 25}, {Attr: "label.rack", Weight: 75}},
			"p", (25*0.5 + 75*0.0) / 100, true},
		{"missing second label", "c1", []structs.Spread{{Attr: "label.zone", Weight: 50}, {Attr: "label.rack", Weight: 50}},
			"p", (50*1 - 50) / 100.0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j := testJob("self", 1, 1) // alloc 5 is its own: a runs 2, b 1
			j.PipelineID = tt.pipe
			j.Spec.Spread = tt.spread
			pc, err := countPipeline(st, nodes, j)
			if err != nil {
				t.Fatal(err)
			}
			got, applies := labelSpreadScorer{}.Score(st.node(tt.node), j, pc)
			if applies != tt.applies || math.Abs(got-tt.want) > 1e-9 {
				t.Errorf("Score = %v, %v; want %v, %v", got, applies, tt.want, tt.applies)
			}
		})
	}
}

func TestAntiAffinityScorer_Score(t *testing.T) {
	st := spreadCluster()
	nodes, _ := st.Nodes()
	tests := []struct {
		name    string
		node    string
		anti    bool
		job     string
		want    float64
		applies bool
	}{
		{"not asked", "a1", false, "j", 0, false},
		{"node runs the pipeline", "a1", true, "j", -1, true},
		{"node runs another pipeline", "c1", true, "j", 0, true},
		{"node runs only a finished alloc", "x", true, "j", 0, true},
		{"own earlier attempt does not count", "a1", true, "self", -1, true}, // alloc 1 still counts
		{"only own attempt on node", "a2", true, "lint", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j := testJob(tt.job, 1, 1)
			j.PipelineID = "p"
			j.Spec.AntiAffinity = tt.anti
			pc, err := countPipeline(st, nodes, j)
			if err != nil {
				t.Fatal(err)
			}
			got, applies := antiAffinityScorer{}.Score(st.node(tt.node), j, pc)
			if applies != tt.applies || got != tt.want {
				t.Errorf("Score = %v, %v; want %v, %v", got, applies, tt.want, tt.applies)
			}
		})
	}
}

// TestPlace_labelSpreadWidensSample: with the default log2 limit, a spread job
// keeps sampling until it has scored a node of an unused zone.
func TestPlace_labelSpreadWidensSample(t *testing.T) {
	st := spreadCluster()
	s := New(Config{})
	j := testJob("new", 10, 10)
	j.PipelineID = "p"
	j.Spec.Spread = []structs.Spread{{Attr: "label.zone", Weight: 100}}
	for seed := range uint64(20) {
		plan, err := s.Place(st, testEval(j), j, rand.New(rand.NewPCG(seed, 0)))
		if err != nil {
			t.Fatal(err)
		}
		if plan.Placement == nil || plan.Placement.NodeID != "c1" {
			t.Fatalf("seed %d: placed on %v, want c1 (the only zone without the pipeline)", seed, plan.Placement)
		}
	}
}
