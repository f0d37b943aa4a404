package server

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"slices"

	"github.com/ciplat/ciplat/fsm/state"
	"github.com/ciplat/ciplat/fsm/structs"
	"github.com/ciplat/ciplat/scheduler"
)

// planPreemption is asked when a job fits on no node and preemption is on.
// It looks for the one node where evicting live allocations of
// lower-priority jobs makes room, and returns a plan placing the job there
// with those evictions (Plan.Preemptions), or nil when no node would do.
//
// Every node passes the scheduler's own checks (status, drivers,
// constraints, resources) through scheduler.Place on a view of the node
// without its lower-priority allocations, so preemption never places where
// the scheduler would not. Among the nodes that would fit, the cheapest
// eviction wins, compared in order: the highest evicted priority, the
// number of evictions, the sum of their priorities, then node ID. On a node
// the victims are the fewest and lowest: taken lowest priority first
// (larger first within a priority, then youngest), then any that turned out
// not to be needed are given back.
//
// Like the scheduler it reads only the snapshot and writes nothing; the plan
// applier re-checks every eviction and the placement against newer state.
func planPreemption(snap *state.StateSnapshot, sched *scheduler.Scheduler, ev *structs.Evaluation,
	job *structs.Job, rng *rand.Rand, metrics *structs.PlacementMetrics) (*structs.Plan, error) {
	nodes, err := snap.Nodes()
	if err != nil {
		return nil, err
	}
	var best *preemptCandidate
	for _, n := range nodes {
		if n == nil || !n.Schedulable() {
			continue
		}
		allocs, err := snap.AllocsByNode(n.ID)
		if err != nil {
			return nil, err
		}
		lower, err := lowerPriority(snap, allocs, job.Priority)
		if err != nil {
			return nil, err
		}
		if len(lower) == 0 {
			continue
		}
		view := &evictedView{node: n, allocs: allocs, gone: lower}
		plan, err := sched.Place(view, ev, job, rng)
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
	if metrics != nil {
		m := *metrics
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
func lowerPriority(snap *state.StateSnapshot, allocs []*structs.Allocation, prio int) (map[string]victim, error) {
	var out map[string]victim
	for _, a := range allocs {
		if !a.Live() || a.DesiredStatus != structs.AllocDesiredRun {
			continue
		}
		j, err := snap.JobByID(nil, a.JobID)
		if err != nil {
			return nil, err
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

// cheaper reports whether c evicts less than o (see planPreemption).
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

// evictedView is the scheduler's State for one node as it would be with
// the gone allocations evicted.
type evictedView struct {
	node   *structs.Node
	allocs []*structs.Allocation
	gone   map[string]victim
}

var _ scheduler.State = (*evictedView)(nil)

// The snapshot counts a pipeline's allocations from an index, so spread and
// anti-affinity cost O(allocations of the pipeline). The evictedView does
// not: the scheduler then counts from its one node's allocations, which is
// all a preemption check on that node needs to rank it.
var _ scheduler.PipelineState = (*state.StateSnapshot)(nil)

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
