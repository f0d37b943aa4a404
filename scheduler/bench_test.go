package scheduler

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ciplat/ciplat/fsm/structs"
)

// benchJobs is the size of the pool of pending jobs a benchmark cycles through.
const benchJobs = 100_000

// benchInput is a cluster and a pool of jobs, built once per sub-benchmark.
type benchInput struct {
	st    State
	jobs  []*structs.Job
	evals []*structs.Evaluation
}

// Variants of BenchmarkSchedule, each a sub-benchmark per cluster size.
const (
	benchPlain    = ""
	benchAffinity = "affinity"
	benchSpread   = "spread"
)

var (
	benchMu     sync.Mutex
	benchInputs = map[string]*benchInput{}
)

func getBenchInput(nodes int, variant string) *benchInput {
	benchMu.Lock()
	defer benchMu.Unlock()
	key := fmt.Sprint(nodes, variant)
	if in, ok := benchInputs[key]; ok {
		return in
	}
	rng := rand.New(rand.NewPCG(uint64(nodes), 42))
	cluster := randomCluster(rng, nodes)
	in := &benchInput{st: cluster}
	pipelines := 0
	if variant == benchSpread {
		in.st, pipelines = benchPipelines(rng, cluster)
	}
	in.jobs = make([]*structs.Job, benchJobs)
	in.evals = make([]*structs.Evaluation, benchJobs)
	for i := range in.jobs {
		j := randomJob(rng, fmt.Sprintf("job-%06d", i), variant == benchAffinity)
		if variant == benchSpread {
			j.PipelineID = fmt.Sprintf("pipe-%05d", rng.IntN(pipelines))
			j.Spec.Spread = []structs.Spread{{Attr: "label.zone", Weight: structs.DefaultSpreadWeight}}
		}
		in.jobs[i] = j
		in.evals[i] = testEval(j)
	}
	benchInputs[key] = in
	return in
}

// benchPipelines gives the cluster's allocations to pipelines of three on
// average (random nodes, so a pipeline runs in one to three zones) and
// returns the cluster with a pipeline index, as the state store's snapshot
// has one (PipelineState), and the number of pipelines.
func benchPipelines(rng *rand.Rand, cluster *memState) (State, int) {
	var n int
	for _, list := range cluster.allocs {
		n += len(list)
	}
	pipelines := max(1, n/3)
	idx := indexedPipelines{memState: cluster, byPipeline: map[string][]*structs.Allocation{}}
	for _, node := range cluster.nodes { // in ID order: the same input every run
		for _, a := range cluster.allocs[node.ID] {
			a.PipelineID = fmt.Sprintf("pipe-%05d", rng.IntN(pipelines))
			idx.byPipeline[a.PipelineID] = append(idx.byPipeline[a.PipelineID], a)
		}
	}
	return idx, pipelines
}

// indexedPipelines is a memState with an index of allocations by pipeline,
// as the state store's snapshot answers AllocsByPipeline from one.
type indexedPipelines struct {
	*memState
	byPipeline map[string][]*structs.Allocation
}

var _ PipelineState = indexedPipelines{}

func (s indexedPipelines) AllocsByPipeline(id string) ([]*structs.Allocation, error) {
	return s.byPipeline[id], nil
}

// BenchmarkSchedule measures the scheduler alone: Place against a fixed
// snapshot (placements are not committed), from GOMAXPROCS workers at once,
// each with its own rng, cycling through a pool of 100,000 pending jobs with
// mixed asks, constraints and drivers. The /affinity variants give every job
// two affinities, which widens the sample to AffinityLimit nodes. The
// /spread variants put every job in one of the pipelines the cluster's
// allocations belong to (three allocations each on average) with a spread
// over label.zone: each placement counts its pipeline's allocations from the
// pipeline index, and the sample widens until it scores a node of a zone the
// pipeline does not run in yet.
//
// It reports placements/s (wall clock, all workers), the p50/p95 latency of
// one Place call, and cpu-ns/op: the process CPU time per placement, which
// shared machines disturb less than wall time (2e9 / cpu-ns/op is what two
// dedicated cores would sustain). Run:
//
//	go test ./scheduler -run '^$' -bench Schedule -benchtime 2s
func BenchmarkSchedule(b *testing.B) {
	for _, nodes := range []int{100, 1000, 10000} {
		for _, variant := range []string{benchPlain, benchAffinity, benchSpread} {
			name := fmt.Sprintf("nodes=%d", nodes)
			if variant != benchPlain {
				name += "/" + variant
			}
			b.Run(name, func(b *testing.B) { benchmarkPlace(b, getBenchInput(nodes, variant)) })
		}
	}
}

func benchmarkPlace(b *testing.B, in *benchInput) {
	s := New(Config{})
	lat := make([]time.Duration, b.N)
	var next, placed, evaluated atomic.Int64
	var worker atomic.Uint64
	b.ReportAllocs()
	cpu0, cpuOK := processCPU()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		rng := rand.New(rand.NewPCG(worker.Add(1), 7))
		for pb.Next() {
			i := next.Add(1) - 1
			k := int(i % benchJobs)
			t0 := time.Now()
			plan, err := s.Place(in.st, in.evals[k], in.jobs[k], rng)
			lat[i] = time.Since(t0)
			if err != nil {
				b.Error(err)
				return
			}
			if plan.Placement != nil {
				placed.Add(1)
			}
			evaluated.Add(int64(plan.Metrics.NodesEvaluated))
		}
	})
	b.StopTimer()
	if cpu1, ok := processCPU(); ok && cpuOK {
		b.ReportMetric(float64(cpu1-cpu0)/float64(b.N), "cpu-ns/op")
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "placements/s")
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2]), "p50-ns")
	b.ReportMetric(float64(lat[len(lat)*95/100]), "p95-ns")
	b.ReportMetric(float64(placed.Load())/float64(b.N), "placed-ratio")
	b.ReportMetric(float64(evaluated.Load())/float64(b.N), "nodes/op")
}
