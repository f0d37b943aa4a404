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
	st    *memState
	jobs  []*structs.Job
	evals []*structs.Evaluation
}

var (
	benchMu     sync.Mutex
	benchInputs = map[string]*benchInput{}
)

func getBenchInput(nodes int, affinities bool) *benchInput {
	benchMu.Lock()
	defer benchMu.Unlock()
	key := fmt.Sprint(nodes, affinities)
	if in, ok := benchInputs[key]; ok {
		return in
	}
	rng := rand.New(rand.NewPCG(uint64(nodes), 42))
	in := &benchInput{st: randomCluster(rng, nodes)}
	in.jobs = make([]*structs.Job, benchJobs)
	in.evals = make([]*structs.Evaluation, benchJobs)
	for i := range in.jobs {
		in.jobs[i] = randomJob(rng, fmt.Sprintf("job-%06d", i), affinities)
		in.evals[i] = testEval(in.jobs[i])
	}
	benchInputs[key] = in
	return in
}

// BenchmarkSchedule measures the scheduler alone: Place against a fixed
// snapshot (placements are not committed), from GOMAXPROCS workers at once,
// each with its own rng, cycling through a pool of 100,000 pending jobs with
// mixed asks, constraints and drivers. The /affinity variants give every job
// two affinities, which widens the sample to AffinityLimit nodes.
//
// It reports placements/s (wall clock, all workers), the p50/p95 latency of
// one Place call, and cpu-ns/op: the process CPU time per placement, which
// shared machines disturb less than wall time (2e9 / cpu-ns/op is what two
// dedicated cores would sustain). Run:
//
//	go test ./scheduler -run '^$' -bench Schedule -benchtime 2s
func BenchmarkSchedule(b *testing.B) {
	for _, nodes := range []int{100, 1000, 10000} {
		for _, aff := range []bool{false, true} {
			name := fmt.Sprintf("nodes=%d", nodes)
			if aff {
				name += "/affinity"
			}
			b.Run(name, func(b *testing.B) { benchmarkPlace(b, getBenchInput(nodes, aff)) })
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
