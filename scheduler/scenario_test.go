package scheduler

import (
	"bytes"
	"encoding/json"
	"flag"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ciplat/ciplat/fsm/structs"
)

var update = flag.Bool("update", false, "rewrite the golden files of testdata/scenarios")

// scenario is one file of testdata/scenarios: a cluster, a stream of jobs
// placed one after the other (each accepted placement is committed before the
// next job, as the plan applier would), a configuration and a seed.
//
// With config.preemption a job that fits nowhere is given to Preempt, as the
// server's workers do, and its evictions are committed with its placement
// (desired status stop, preempted by the new allocation). AllocJobs are the
// jobs the allocs run for: preemption reads their priorities (the stream's
// jobs are known too, so a later job may evict an earlier one).
type scenario struct {
	Description string `json:"description"`
	Config      struct {
		Algorithm  string `json:"algorithm"`
		Limit      int    `json:"limit"`
		Preemption bool   `json:"preemption"`
	} `json:"config"`
	Seed      uint64                `json:"seed"`
	Nodes     []*structs.Node       `json:"nodes"`
	Allocs    []*structs.Allocation `json:"allocs"`
	AllocJobs []*structs.Job        `json:"alloc_jobs"`
	Jobs      []*structs.Job        `json:"jobs"`
}

// scenarioResult is what the golden file records for one job. Scores are
// rounded to 4 places so the file does not depend on the last bit of Exp.
type scenarioResult struct {
	JobID       string          `json:"job_id"`
	NodeID      string          `json:"node_id,omitempty"`
	Score       float64         `json:"score,omitempty"`
	Explain     string          `json:"explain"`
	Evaluated   int             `json:"nodes_evaluated"`
	Filtered    int             `json:"nodes_filtered"`
	Exhausted   int             `json:"nodes_exhausted"`
	FilteredBy  map[string]int  `json:"filtered_by,omitempty"`
	ExhaustedBy map[string]int  `json:"exhausted_by,omitempty"`
	Offers      []structs.Offer `json:"offers,omitempty"`
	// Preempted are the evictions of a plan from Preempt.
	Preempted []*structs.Preemption `json:"preempted,omitempty"`
}

// TestScenarios runs every testdata/scenarios/*.json and compares the
// placements and reasons with the matching *.golden.json; -update rewrites them.
func TestScenarios(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "scenarios", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, file := range files {
		if strings.HasSuffix(file, ".golden.json") {
			continue
		}
		n++
		name := strings.TrimSuffix(filepath.Base(file), ".json")
		t.Run(name, func(t *testing.T) {
			got := runScenario(t, file)
			golden := strings.TrimSuffix(file, ".json") + ".golden.json"
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -run TestScenarios -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s differs from the golden file (rerun with -update if the change is intended):\n--- got\n%s\n--- want\n%s", name, got, want)
			}
		})
	}
	if n < 5 {
		t.Errorf("found %d scenarios, want at least 5", n)
	}
}

func runScenario(t *testing.T, file string) []byte {
	t.Helper()
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var sc scenario
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&sc); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	st := newMemState(sc.Nodes, sc.Allocs)
	st.jobs = make(map[string]*structs.Job, len(sc.AllocJobs)+len(sc.Jobs))
	for _, j := range append(slices.Clone(sc.AllocJobs), sc.Jobs...) {
		st.jobs[j.ID] = j
	}
	s := New(Config{Algorithm: sc.Config.Algorithm, Limit: sc.Config.Limit})
	rng := rand.New(rand.NewPCG(sc.Seed, 0))
	var results []scenarioResult
	for _, job := range sc.Jobs {
		eval := testEval(job)
		plan, err := s.Place(st, eval, job, rng)
		if err != nil {
			t.Fatalf("job %s: %v", job.ID, err)
		}
		if plan.Placement == nil && sc.Config.Preemption {
			pp, err := s.Preempt(st, eval, job, rng, plan.Metrics)
			if err != nil {
				t.Fatalf("job %s: preempt: %v", job.ID, err)
			}
			if pp != nil {
				plan = pp
			}
		}
		m := plan.Metrics
		r := scenarioResult{
			JobID: job.ID, Explain: Explain(m),
			Evaluated: m.NodesEvaluated, Filtered: m.NodesFiltered, Exhausted: m.NodesExhausted,
			FilteredBy: m.FilteredBy, ExhaustedBy: m.ExhaustedBy,
		}
		for _, o := range plan.Offers {
			o.Score = round4(o.Score)
			for k, v := range o.Scores {
				o.Scores[k] = round4(v)
			}
			r.Offers = append(r.Offers, o)
		}
		if p := plan.Placement; p != nil {
			r.NodeID, r.Score = p.NodeID, round4(p.Score)
			p.ID = "alloc-" + job.ID
			st = commitPreemptions(t, st, p, plan.Preemptions)
			r.Preempted = plan.Preemptions
			allocs, _ := st.AllocsByNode(p.NodeID)
			if ok, dim := AllocsFit(st.node(p.NodeID), allocs, p.Resources); !ok {
				t.Fatalf("job %s: placement on %s does not fit (%s)", job.ID, p.NodeID, dim)
			}
			st = st.with(p)
		}
		results = append(results, r)
	}
	out, err := json.MarshalIndent(struct {
		Description string           `json:"description"`
		Results     []scenarioResult `json:"results"`
	}{sc.Description, results}, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(out, '\n')
}

// commitPreemptions evicts the plan's victims as the FSM does: each must be a
// live allocation on the placement's node; it is stopped and marked
// preempted by the placement (Preemption.ByAllocID is filled, as the plan
// applier fills it).
func commitPreemptions(t *testing.T, st *memState, p *structs.Allocation, pre []*structs.Preemption) *memState {
	t.Helper()
	for _, pr := range pre {
		allocs, _ := st.AllocsByNode(p.NodeID)
		i := slices.IndexFunc(allocs, func(a *structs.Allocation) bool { return a.ID == pr.AllocID })
		if i < 0 || !allocs[i].Live() {
			t.Fatalf("job %s: preempts %s, which is no live allocation of node %s", p.JobID, pr.AllocID, p.NodeID)
		}
		pr.ByAllocID = p.ID
		a := *allocs[i]
		a.DesiredStatus, a.PreemptedBy = structs.AllocDesiredStop, p.ID
		st = st.with(&a)
	}
	return st
}

func round4(x float64) float64 { return math.Round(x*1e4) / 1e4 }
