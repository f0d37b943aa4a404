package scheduler

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/ciplat/ciplat/fsm/structs"
)

// TestScheduler_PlaceConcurrentApplier mirrors the server's design on random
// clusters: many workers call Place at once, each on the newest snapshot it
// can get, and one applier re-checks every placement with AllocsFit against
// the newest state before committing it (optimistic concurrency, as Nomad's
// plan_apply.go). A rejected plan sends the job back to be placed again. Now
// and then the applier ends a live allocation, so capacity comes back.
//
// It asserts that no node ever holds more than its capacity and that every
// job ends either placed exactly once or with a non-empty Explain.
func TestScheduler_PlaceConcurrentApplier(t *testing.T) {
	const workers = 8
	seeds := []uint64{1, 2, 3, 4}
	if testing.Short() {
		seeds = seeds[:1]
	}
	for _, seed := range seeds {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 0))
			cluster := randomCluster(rng, 20+rng.IntN(60))
			algorithm := []string{AlgorithmBinPack, AlgorithmSpread}[rng.IntN(2)]
			s := New(Config{Algorithm: algorithm, Limit: []int{0, 3, -1}[rng.IntN(3)]})
			jobs := make([]*structs.Job, 400+rng.IntN(400))
			for i := range jobs {
				jobs[i] = randomJob(rng, fmt.Sprintf("j%04d", i), rng.IntN(3) == 0)
			}
			runApplierProperty(t, s, cluster, jobs, workers, seed)
		})
	}
}

type outcome struct {
	placed   *structs.Allocation
	explain  string
	attempts int
}

func runApplierProperty(t *testing.T, s *Scheduler, initial *memState, jobs []*structs.Job, workers int, seed uint64) {
	var current atomic.Pointer[memState]
	current.Store(initial)

	type result struct {
		job  int
		plan *structs.Plan
		err  error
	}
	queue := make(chan int, len(jobs))
	results := make(chan result)
	for i := range jobs {
		queue <- i
	}

	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(seed, uint64(w)+1))
			for i := range queue {
				j := jobs[i]
				plan, err := s.Place(current.Load(), testEval(j), j, rng)
				results <- result{i, plan, err}
			}
		})
	}

	// The applier: the only writer of current.
	outcomes := make([]outcome, len(jobs))
	applierRng := rand.New(rand.NewPCG(seed, 1000))
	var live []*structs.Allocation
	resolved, rejected := 0, 0
	for resolved < len(jobs) {
		r := <-results
		if r.err != nil {
			t.Fatalf("job %d: %v", r.job, r.err)
		}
		o := &outcomes[r.job]
		o.attempts++
		if o.attempts > 1000 {
			t.Fatalf("job %d rejected 1000 times", r.job)
		}
		p := r.plan.Placement
		if p == nil {
			o.explain = Explain(r.plan.Metrics)
			resolved++
			continue
		}
		st := current.Load()
		node := st.node(p.NodeID)
		allocs, _ := st.AllocsByNode(p.NodeID)
		if ok, _ := AllocsFit(node, allocs, p.Resources); !ok {
			rejected++
			queue <- r.job // plan rejected: evaluate again on newer state
			continue
		}
		p.ID = fmt.Sprintf("alloc-%d", r.job)
		st = st.with(p)
		live = append(live, p)
		// Now and then a running job finishes and frees its resources.
		if len(live) > 0 && applierRng.IntN(3) == 0 {
			k := applierRng.IntN(len(live))
			done := live[k].Copy()
			done.ClientStatus = structs.AllocClientComplete
			live = append(live[:k], live[k+1:]...)
			st = st.with(done)
		}
		current.Store(st)
		checkCapacity(t, st)
		o.placed = p
		resolved++
	}
	close(queue)
	wg.Wait()

	placed := 0
	for i, o := range outcomes {
		switch {
		case o.placed != nil:
			placed++
		case o.explain == "":
			t.Errorf("job %s neither placed nor explained", jobs[i].ID)
		}
	}
	t.Logf("%d jobs: %d placed, %d unplaced with a reason, %d plans rejected by the applier",
		len(jobs), placed, len(jobs)-placed, rejected)
	if placed == 0 {
		t.Error("nothing was placed")
	}
}

// checkCapacity fails the test if any node holds more than its capacity.
func checkCapacity(t *testing.T, st *memState) {
	t.Helper()
	for _, n := range st.nodes {
		used := liveUsage(st.allocs[n.ID])
		if ok, dim := used.Fits(n.Capacity()); !ok {
			t.Fatalf("node %s over capacity on %s: %+v used of %+v", n.ID, dim, used, n.Capacity())
		}
	}
}
