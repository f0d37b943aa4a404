package scheduler

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"slices"

	"github.com/ciplat/ciplat/fsm/structs"
)

// PreemptionState is the State preemption plans over: the cluster, and the
// job of each allocation, whose priority says whether it may be evicted. The
// state store's snapshot satisfies it.
//
// Concurrency: as State; Preempt only reads it.
type PreemptionState interface {
	State
	// Job returns the job with the ID, or nil when there is none.
	Job(id string) (*structs.Job, error)
}

// Preempt is asked when Place found no node for job and preemption is on.
// It looks for the one node where evicting live allocations of
// lower-priority jobs makes room, and returns a plan placing the job there
// with those evictions (Plan.Preemptions), or nil when no node would do.
//
// Every node passes the scheduler's own checks (status, drivers,
// constraints, resources) through Place on a view of the node without its
// lower-priority allocations, so preemption never places where the
// scheduler would not. Among the nodes that would fit, the cheapest
// eviction wins, compared in order: the highest evicted priority, the
// number of evictions, the sum of their priorities, then node ID. On a node
// the victims are the fewest and lowest: taken lowest priority first
// (larger first within a priority, then youngest), then any that turned out
// not to be needed are given back.
//
// failed is the metrics of the Place that found no node: the plan carries a
// copy of them whose TopOffers are the plan's offers (nil: no metrics).
//
// Like Place it reads only st and writes nothing; the plan applier re-checks
// every eviction and the placement against newer state. It is safe for
// concurrent use, each caller with its own rng.
func (s *Scheduler) Preempt(st PreemptionState, eval *structs.Evaluation, job *structs.Job,
	rng *rand.Rand, failed *structs.PlacementMetrics) (*structs.Plan, error) {
	if err := s.checkArgs(st, eval, job, rng); err != nil {
		return nil, err
	}
	nodes, err := st.Nodes()
	if err != nil {
		return nil, fmt.Errorf("scheduler: list nodes: %w", err)
	}
	var best *preemptCandidate
	for _, n := range nodes {
		if n == nil || !n.Schedulable() {
			continue
		}
		allocs, err := st.AllocsByNode(n.ID)
		if err != nil {
			return nil, fmt.Errorf("scheduler: allocations of node %s: %w", n.ID, err)
		}
		lower, err := lowerPriority(st, allocs, job.Priority)
		if err != nil {
			return nil, err
		}
		if len(lower) == 0 {
			continue
		}
		view := &evictedView{node: n, allocs: allocs, gone: lower}
		plan, err := s.Place(view, eval, job, rng)
		if err != nil {
			return nil, err
		}
		if plan.Placement == nil {
			continue // even with every lower-priority job gone it does not fit
		}
		c := &preemptCandidate{node: n, plan: plan, victims: fewestVictims(n, allocs, lower, job.Spec.Resources)}
		if c.victims == nil {
			continue
		}
		if best == nil || c.cheaper(best) {
			best = c
		}
	}
	if best == nil {
		return nil, nil
	}
	plan := best.plan
	reason := fmt.Sprintf("preempted by %s (priority %d)", job.Name, job.Priority)
	for _, v := range best.victims {
		plan.Preemptions = append(plan.Preemptions, &structs.Preemption{AllocID: v.alloc.ID, Reason: reason})
	}
	if failed != nil {
		m := *failed
		m.TopOffers = plan.Offers
		plan.Metrics = &m
	}
	return plan, nil
}

// victim is a live allocation of a lower-priority job.
type victim struct {
	alloc    *structs.Allocation
	priority int
}

// lowerPriority lists the node's live allocations whose job has a priority
// below prio.
func lowerPriority(st PreemptionState, allocs []*structs.Allocation, prio int) (map[string]victim, error) {
	var out map[string]victim
	for _, a := range allocs {
		if !a.Live() || a.DesiredStatus != structs.AllocDesiredRun {
			continue
		}
		j, err := st.Job(a.JobID)
		if err != nil {
			return nil, fmt.Errorf("scheduler: job %s of allocation %s: %w", a.JobID, a.ID, err)
		}
		if j == nil || j.Priority >= prio {
			continue
		}
		if out == nil {
			out = map[string]victim{}
		}
		out[a.ID] = victim{alloc: a, priority: j.Priority}
	}
	return out, nil
}

// fewestVictims picks the evictions that make ask fit on n: lowest priority
// first, then larger, then younger; then drops, highest priority first,
// those the rest make unnecessary. nil when even all of them do not.
func fewestVictims(n *structs.Node, allocs []*structs.Allocation, lower map[string]victim, ask structs.Resources) []victim {
	cands := make([]victim, 0, len(lower))
	for _, v := range lower {
		cands = append(cands, v)
	}
	slices.SortFunc(cands, func(a, b victim) int {
		if c := cmp.Compare(a.priority, b.priority); c != 0 {
			return c
		}
		if c := cmp.Compare(b.alloc.Resources.CPU+b.alloc.Resources.MemoryMB, a.alloc.Resources.CPU+a.alloc.Resources.MemoryMB); c != 0 {
			return c
		}
		if c := cmp.Compare(b.alloc.CreateIndex, a.alloc.CreateIndex); c != 0 {
			return c
		}
		return cmp.Compare(a.alloc.ID, b.alloc.ID)
	})
	var used structs.Resources
	for _, a := range allocs {
		if a.Live() {
			used = used.Add(a.Resources)
		}
	}
	fits := func(freed structs.Resources) bool {
		ok, _ := used.Sub(freed).Add(ask).Fits(n.Capacity())
		return ok
	}
	var chosen []victim
	var freed structs.Resources
	for _, v := range cands {
		if fits(freed) {
			break
		}
		chosen = append(chosen, v)
		freed = freed.Add(v.alloc.Resources)
	}
	if !fits(freed) {
		return nil
	}
	for i := len(chosen) - 1; i >= 0; i-- {
		without := freed.Sub(chosen[i].alloc.Resources)
		if fits(without) {
			freed = without
			chosen = slices.Delete(chosen, i, i+1)
		}
	}
	return chosen
}

// preemptCandidate is one node where preemption would place the job.
type preemptCandidate struct {
	node    *structs.Node
	plan    *structs.Plan
	victims []victim
}

func (c *preemptCandidate) cost() (maxPrio, n, sum int) {
	for _, v := range c.victims {
		maxPrio = max(maxPrio, v.priority)
		sum += v.priority
	}
	return maxPrio, len(c.victims), sum
}

// cheaper reports whether c evicts less than o (see Preempt).
func (c *preemptCandidate) cheaper(o *preemptCandidate) bool {
	cm, cn, cs := c.cost()
	om, on, os := o.cost()
	if cm != om {
		return cm < om
	}
	if cn != on {
		return cn < on
	}
	if cs != os {
		return cs < os
	}
	return c.node.ID < o.node.ID
}

// evictedView is the State of one node as it would be with the gone
// allocations evicted.
//
// It is not a PipelineState: Place then counts a pipeline's allocations
// (spread, anti-affinity) from the view's one node, which is all a
// preemption check on that node needs to rank it.
type evictedView struct {
	node   *structs.Node
	allocs []*structs.Allocation
	gone   map[string]victim
}

var _ State = (*evictedView)(nil)

func (v *evictedView) Nodes() ([]*structs.Node, error) { return []*structs.Node{v.node}, nil }

func (v *evictedView) AllocsByNode(nodeID string) ([]*structs.Allocation, error) {
	if nodeID != v.node.ID {
		return nil, nil
	}
	out := make([]*structs.Allocation, 0, len(v.allocs))
	for _, a := range v.allocs {
		if _, ok := v.gone[a.ID]; !ok {
			out = append(out, a)
		}
	}
	return out, nil
}
