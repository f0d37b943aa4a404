package scheduler

import (
	"errors"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/ciplat/ciplat/fsm/structs"
)

// The decisions of Preempt (which node, which victims) are in the golden
// scenarios testdata/scenarios/preempt_*.json; these tests cover its
// contract around them.

// jobErrState is a memState whose Job lookup fails.
type jobErrState struct{ *memState }

func (jobErrState) Job(string) (*structs.Job, error) { return nil, errors.New("disk on fire") }

// preemptCluster is one 2000-millicore node full with a priority-10 job.
func preemptCluster() *memState {
	st := newMemState([]*structs.Node{testNode("n1", 2000, 2048)}, []*structs.Allocation{testAlloc("low", "n1", 2000, 512)})
	st.jobs = map[string]*structs.Job{"job-low": {ID: "job-low", Priority: 10}}
	return st
}

func TestScheduler_PreemptErrors(t *testing.T) {
	j := testJob("high", 1000, 256)
	j.Priority = 90
	rng := rand.New(rand.NewPCG(1, 1))
	for _, tt := range []struct {
		name string
		s    *Scheduler
		st   PreemptionState
		job  *structs.Job
		want string
	}{
		{"bad config", New(Config{Algorithm: "x"}), preemptCluster(), j, "unknown algorithm"},
		{"no state", New(Config{}), nil, j, "needs a State"},
		{"no job", New(Config{}), preemptCluster(), nil, "has no job"},
		{"job lookup fails", New(Config{}), jobErrState{preemptCluster()}, j, "job job-low of allocation low: disk on fire"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			plan, err := tt.s.Preempt(tt.st, testEval(j), tt.job, rng, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) || plan != nil {
				t.Errorf("Preempt = %v, %v; want nil and an error containing %q", plan, err, tt.want)
			}
		})
	}
}

// TestScheduler_PreemptMetrics: the plan carries a copy of the failed
// placement's metrics with its own offers; the caller's metrics are left as
// they were.
func TestScheduler_PreemptMetrics(t *testing.T) {
	st := preemptCluster()
	j := testJob("high", 1000, 256)
	j.Priority = 90
	s := New(Config{})
	rng := rand.New(rand.NewPCG(1, 1))
	failed, err := s.Place(st, testEval(j), j, rng)
	if err != nil || failed.Placement != nil {
		t.Fatalf("Place = %+v, %v; want no placement", failed, err)
	}
	plan, err := s.Preempt(st, testEval(j), j, rng, failed.Metrics)
	if err != nil || plan == nil || plan.Placement == nil || len(plan.Preemptions) != 1 || plan.Preemptions[0].AllocID != "low" {
		t.Fatalf("Preempt = %+v, %v; want low evicted", plan, err)
	}
	if plan.Metrics == failed.Metrics || plan.Metrics.NodesExhausted != 1 || len(plan.Metrics.TopOffers) != 1 ||
		len(failed.Metrics.TopOffers) != 0 {
		t.Fatalf("metrics = %+v (failed: %+v); want a copy with the plan's offers", plan.Metrics, failed.Metrics)
	}

	j.Priority = 10 // equal: nothing may be evicted
	if plan, err := s.Preempt(st, testEval(j), j, rng, failed.Metrics); err != nil || plan != nil {
		t.Fatalf("Preempt of an equal-priority job = %+v, %v; want nil, nil", plan, err)
	}
}
