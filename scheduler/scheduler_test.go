package scheduler

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/ciplat/ciplat/fsm/structs"
)

// randomCluster builds n nodes of mixed size, zone, arch and health, with
// some allocations on them. It is the cluster of the tests and benchmarks.
func randomCluster(rng *rand.Rand, n int) *memState {
	zones := []string{"a", "b", "c"}
	var nodes []*structs.Node
	var allocs []*structs.Allocation
	for i := range n {
		cpu := 4000 * (1 + rng.IntN(4))
		mem := 8192 * (1 + rng.IntN(4))
		node := testNode(fmt.Sprintf("node-%05d", i), cpu, mem,
			"label.zone", zones[rng.IntN(len(zones))],
			"label.pool", fmt.Sprintf("pool-%d", rng.IntN(4)),
			"docker.version", fmt.Sprintf("%d.%d.0", 24+rng.IntN(5), rng.IntN(10)),
		)
		node.Reserved = structs.Resources{CPU: 200, MemoryMB: 512}
		if rng.IntN(5) == 0 {
			node.Attributes["arch"] = "arm64"
		}
		switch rng.IntN(50) {
		case 0:
			node.Status = structs.NodeStatusDown
		case 1:
			node.Eligible = false
		case 2:
			node.Drain = true
		case 3, 4:
			node.Drivers["docker"] = &structs.DriverInfo{Detected: true, Healthy: false}
		}
		nodes = append(nodes, node)
		// Up to 8 allocations, filling up to about 60% of the node.
		for k := range rng.IntN(9) {
			a := testAlloc(fmt.Sprintf("%s-a%d", node.ID, k), node.ID, 100+rng.IntN(cpu/14), 64+rng.IntN(mem/14))
			if rng.IntN(4) == 0 {
				a.ClientStatus = structs.AllocClientComplete
			}
			allocs = append(allocs, a)
		}
	}
	return newMemState(nodes, allocs)
}

// randomJob asks for 100..2000 millicores and 128..4096 MiB, with a
// constraint, a driver or affinities now and then.
func randomJob(rng *rand.Rand, id string, affinities bool) *structs.Job {
	j := testJob(id, 100+rng.IntN(1901), 128+rng.IntN(3969))
	switch rng.IntN(4) {
	case 0:
		j.Spec.Constraints = []structs.Constraint{{Attr: "arch", Op: "=", Value: "amd64"}}
	case 1:
		j.Spec.Driver = "docker"
		j.Spec.Constraints = []structs.Constraint{{Attr: "docker.version", Op: "version", Value: ">= 25"}}
	case 2:
		j.Spec.Constraints = []structs.Constraint{{Attr: "label.pool", Op: "regexp", Value: "^pool-[0-2]$"}}
	}
	if affinities {
		j.Spec.Affinities = []structs.Affinity{
			{Attr: "label.zone", Op: "=", Value: []string{"a", "b", "c"}[rng.IntN(3)], Weight: 50},
			{Attr: "label.pool", Op: "=", Value: "pool-3", Weight: -20},
		}
	}
	return j
}

func TestScheduler_Place(t *testing.T) {
	st := newMemState([]*structs.Node{
		testNode("n1", 4000, 8192),
		testNode("n2", 4000, 8192),
	}, []*structs.Allocation{testAlloc("a1", "n2", 2000, 4096)})
	j := testJob("build", 500, 1024)
	j.Attempt = 3
	eval := testEval(j)
	plan, err := New(Config{}).Place(st, eval, j, rand.New(rand.NewPCG(1, 2)))
	if err != nil {
		t.Fatal(err)
	}
	want := &structs.Allocation{
		NodeID: "n2", JobID: "build", PipelineID: "p-build", EvalID: "eval-build", Attempt: 3,
		Resources:     structs.Resources{CPU: 500, MemoryMB: 1024},
		DesiredStatus: structs.AllocDesiredRun, ClientStatus: structs.AllocClientPending,
		Score: plan.Offers[0].Score,
	}
	if !reflect.DeepEqual(plan.Placement, want) {
		t.Errorf("Placement = %+v\nwant %+v", plan.Placement, want)
	}
	if plan.EvalID != eval.ID || plan.JobID != j.ID || plan.Priority != eval.Priority {
		t.Errorf("plan header = %q %q %d", plan.EvalID, plan.JobID, plan.Priority)
	}
	if len(plan.Offers) != 2 || plan.Offers[0].NodeID != "n2" || plan.Offers[0].Score <= plan.Offers[1].Score {
		t.Errorf("Offers = %+v, want n2 then n1, best first", plan.Offers)
	}
	if !reflect.DeepEqual(plan.Offers, plan.Metrics.TopOffers) {
		t.Errorf("Metrics.TopOffers differ from Offers")
	}
	if _, ok := plan.Offers[0].Scores["binpack"]; !ok || len(plan.Offers[0].Scores) != 1 {
		t.Errorf("Offer.Scores = %v, want binpack only", plan.Offers[0].Scores)
	}
	if m := plan.Metrics; m.NodesEvaluated != 2 || m.NodesFiltered != 0 || m.NodesExhausted != 0 {
		t.Errorf("Metrics = %+v", m)
	}
}

func TestScheduler_PlaceErrors(t *testing.T) {
	st := newMemState([]*structs.Node{testNode("n1", 1000, 1000)}, nil)
	j := testJob("j", 1, 1)
	rng := rand.New(rand.NewPCG(1, 1))
	boom := errors.New("boom")
	tests := []struct {
		name string
		s    *Scheduler
		st   State
		eval *structs.Evaluation
		job  *structs.Job
		rng  *rand.Rand
		want string
	}{
		{"bad algorithm", New(Config{Algorithm: "roundrobin"}), st, testEval(j), j, rng, `unknown algorithm "roundrobin"`},
		{"nil state", New(Config{}), nil, testEval(j), j, rng, "needs a State"},
		{"nil eval", New(Config{}), st, nil, j, rng, "needs an evaluation"},
		{"nil job", New(Config{}), st, testEval(j), nil, rng, "has no job"},
		{"nil spec", New(Config{}), st, testEval(j), &structs.Job{ID: "x"}, rng, "job x has no spec"},
		{"nil rng", New(Config{}), st, testEval(j), j, nil, "random source"},
		{"nodes fail", New(Config{}), failingState{nodesErr: boom}, testEval(j), j, rng, "list nodes: boom"},
		{"allocs fail", New(Config{}), failingState{memState: st, allocsErr: boom}, testEval(j), j, rng, "allocations of node n1: boom"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			plan, err := tt.s.Place(tt.st, tt.eval, tt.job, tt.rng)
			if err == nil || !strings.Contains(err.Error(), tt.want) || plan != nil {
				t.Errorf("Place = %v, %v; want nil and an error containing %q", plan, err, tt.want)
			}
		})
	}
}

type failingState struct {
	*memState
	nodesErr, allocsErr error
}

func (f failingState) Nodes() ([]*structs.Node, error) {
	if f.nodesErr != nil {
		return nil, f.nodesErr
	}
	return f.memState.Nodes()
}

func (f failingState) AllocsByNode(string) ([]*structs.Allocation, error) {
	return nil, f.allocsErr
}

func TestConfig_Validate(t *testing.T) {
	for _, alg := range []string{"", "binpack", "spread"} {
		if err := (Config{Algorithm: alg}).Validate(); err != nil {
			t.Errorf("Validate(%q) = %v", alg, err)
		}
	}
	err := Config{Algorithm: "best"}.Validate()
	if err == nil || !strings.Contains(err.Error(), `want "binpack" or "spread"`) {
		t.Errorf("Validate(best) = %v, want an error naming the choices", err)
	}
}

func TestScheduler_PlaceNoNodes(t *testing.T) {
	j := testJob("j", 1, 1)
	plan, err := New(Config{}).Place(newMemState(nil, nil), testEval(j), j, rand.New(rand.NewPCG(1, 1)))
	if err != nil || plan.Placement != nil || Explain(plan.Metrics) != "no nodes in the cluster" {
		t.Fatalf("Place = %+v, %v", plan, err)
	}
}

// TestScheduler_PlaceDeterministic: the same state, job and seed give the
// same plan; different seeds may differ.
func TestScheduler_PlaceDeterministic(t *testing.T) {
	st := randomCluster(rand.New(rand.NewPCG(7, 7)), 500)
	s := New(Config{})
	jobRng := rand.New(rand.NewPCG(8, 8))
	distinct := map[string]bool{}
	for i := range 200 {
		j := randomJob(jobRng, fmt.Sprintf("j%d", i), i%2 == 0)
		a, err := s.Place(st, testEval(j), j, rand.New(rand.NewPCG(uint64(i), 99)))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := s.Place(st, testEval(j), j, rand.New(rand.NewPCG(uint64(i), 99)))
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("job %d: two plans for the same seed differ:\n%+v\n%+v", i, a, b)
		}
		if a.Placement != nil {
			distinct[a.Placement.NodeID] = true
		}
	}
	if len(distinct) < 50 {
		t.Errorf("200 placements used only %d distinct nodes; the source is not random enough", len(distinct))
	}
}

// TestScheduler_PlaceLimit: Place stops once Limit feasible nodes are scored.
func TestScheduler_PlaceLimit(t *testing.T) {
	var nodes []*structs.Node
	for i := range 1000 {
		zone := []string{"a", "b"}[i%2]
		if i == 500 {
			zone = "rare"
		}
		nodes = append(nodes, testNode(fmt.Sprintf("n%04d", i), 4000, 8192, "label.zone", zone))
	}
	st := newMemState(nodes, nil)
	plain := testJob("plain", 100, 100)
	withAffinity := func(value string, weight int) *structs.Job {
		j := testJob("aff-"+value, 100, 100)
		j.Spec.Affinities = []structs.Affinity{{Attr: "label.zone", Op: "=", Value: value, Weight: weight}}
		return j
	}
	tests := []struct {
		name     string
		limit    int
		job      *structs.Job
		min, max int
	}{
		{"log2", 0, plain, 10, 10}, // ceil(log2(1000))
		// Affinities widen the sample until a perfectly matching node is scored.
		{"common affinity", 0, withAffinity("a", 10), 10, 20},
		{"rare affinity", 0, withAffinity("rare", 10), 10, AffinityLimit},
		{"unmatched affinity", 0, withAffinity("none", 10), AffinityLimit, AffinityLimit},
		{"negative affinity", 0, withAffinity("a", -10), 10, 20},
		{"fixed", 3, plain, 3, 3},
		{"fixed with affinities", 3, withAffinity("none", 10), 3, 3},
		{"fixed above the node count", 5000, plain, 1000, 1000},
		{"exhaustive", -1, plain, 1000, 1000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for seed := range uint64(10) {
				plan, err := New(Config{Limit: tt.limit}).Place(st, testEval(tt.job), tt.job, rand.New(rand.NewPCG(seed, 1)))
				if err != nil {
					t.Fatal(err)
				}
				got := plan.Metrics.NodesEvaluated
				if got < tt.min || got > tt.max {
					t.Errorf("seed %d: evaluated %d nodes, want %d..%d", seed, got, tt.min, tt.max)
				}
				if len(plan.Offers) != min(got, maxOffers) {
					t.Errorf("seed %d: %d offers, want %d", seed, len(plan.Offers), min(got, maxOffers))
				}
				if w := tt.job.Spec.Affinities; len(w) > 0 && w[0].Weight > 0 && tt.limit == 0 && tt.max == AffinityLimit && tt.min < tt.max {
					// The rare node was found whenever the sample stopped early.
					if got < AffinityLimit && plan.Placement.NodeID != "n0500" {
						t.Errorf("seed %d: stopped after %d nodes on %s, not on the rare node", seed, got, plan.Placement.NodeID)
					}
				}
			}
		})
	}
	// With a small limit, filtered nodes do not count against it.
	cons := testJob("cons", 100, 100)
	cons.Spec.Constraints = []structs.Constraint{{Attr: "label.zone", Op: "=", Value: "b"}}
	plan, _ := New(Config{Limit: 4}).Place(st, testEval(cons), cons, rand.New(rand.NewPCG(3, 3)))
	if got := plan.Metrics.NodesEvaluated - plan.Metrics.NodesFiltered; got != 4 {
		t.Errorf("scored %d feasible nodes, want 4 (metrics %+v)", got, plan.Metrics)
	}
}

// TestScheduler_PlaceMetrics: nothing fits, so every node is evaluated and
// every rejection is counted with its reason.
func TestScheduler_PlaceMetrics(t *testing.T) {
	st := randomCluster(rand.New(rand.NewPCG(5, 5)), 300)
	j := testJob("huge", 16000, 1000)
	j.Spec.Driver = "docker"
	j.Spec.Constraints = []structs.Constraint{{Attr: "arch", Op: "=", Value: "amd64"}}
	plan, err := New(Config{}).Place(st, testEval(j), j, rand.New(rand.NewPCG(1, 1)))
	if err != nil {
		t.Fatal(err)
	}
	m := plan.Metrics
	if plan.Placement != nil || m.NodesEvaluated != 300 || m.NodesFiltered+m.NodesExhausted != 300 {
		t.Fatalf("placement %v, metrics %+v", plan.Placement, m)
	}
	sum := func(c map[string]int) (n int) {
		for _, v := range c {
			n += v
		}
		return n
	}
	if sum(m.FilteredBy) != m.NodesFiltered || sum(m.ExhaustedBy) != m.NodesExhausted {
		t.Errorf("reason counts do not add up: %+v", m)
	}
	for _, r := range []string{"constraint arch = amd64", "node down", "driver docker not healthy"} {
		if m.FilteredBy[r] == 0 {
			t.Errorf("no node filtered by %q: %v", r, m.FilteredBy)
		}
	}
	if m.ExhaustedBy["cpu"] == 0 {
		t.Errorf("no node exhausted on cpu: %v", m.ExhaustedBy)
	}
	t.Logf("Explain: %s", Explain(m))
}

// TestScheduler_PlaceReadOnly: Place changes nothing it reads.
func TestScheduler_PlaceReadOnly(t *testing.T) {
	st := randomCluster(rand.New(rand.NewPCG(9, 9)), 100)
	before, _ := json.Marshal(st.allocs)
	nodesBefore, _ := json.Marshal(st.nodes)
	j := randomJob(rand.New(rand.NewPCG(1, 1)), "j", true)
	jobBefore, _ := json.Marshal(j)
	for seed := range uint64(20) {
		if _, err := New(Config{Limit: -1}).Place(st, testEval(j), j, rand.New(rand.NewPCG(seed, 1))); err != nil {
			t.Fatal(err)
		}
	}
	after, _ := json.Marshal(st.allocs)
	nodesAfter, _ := json.Marshal(st.nodes)
	jobAfter, _ := json.Marshal(j)
	if string(before) != string(after) || string(nodesBefore) != string(nodesAfter) || string(jobBefore) != string(jobAfter) {
		t.Error("Place changed its input")
	}
}

// TestScheduler_PlaceAllocsIndependentOfNodes: the allocations of one Place
// do not grow with the nodes it looks at (nothing is allocated per node).
func TestScheduler_PlaceAllocsIndependentOfNodes(t *testing.T) {
	s := New(Config{Limit: -1})
	j := randomJob(rand.New(rand.NewPCG(3, 3)), "j", true)
	j.Spec.Constraints = []structs.Constraint{{Attr: "docker.version", Op: "version", Value: ">= 25"}}
	allocs := func(n int) float64 {
		st := randomCluster(rand.New(rand.NewPCG(4, 4)), n)
		rng := rand.New(rand.NewPCG(1, 1))
		s.Place(st, testEval(j), j, rng) // warm the caches
		return testing.AllocsPerRun(20, func() { s.Place(st, testEval(j), j, rng) })
	}
	small, large := allocs(50), allocs(2000)
	// A per-node allocation would add ~1,950 at 2,000 nodes; a few more or
	// fewer come from map growth in the top-offers bookkeeping and from the
	// race detector's instrumentation.
	if large > small+4 {
		t.Errorf("Place allocates %v times at 50 nodes, %v at 2000: something allocates per node", small, large)
	}
	t.Logf("allocations per Place: %v", large)
}
