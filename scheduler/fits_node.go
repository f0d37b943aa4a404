package scheduler

import "github.com/ciplat/ciplat/fsm/structs"

// FitsNode reports whether job could run on node now, allocs being the
// node's allocations (live and finished): the checks Place runs on a node
// (status, driver, constraints, then resources), without ranking. The
// leader asks it about nodes that joined or changed, so that a blocked
// evaluation is offered again only when such a node could take its job.
// With ignoreResources only the feasibility checks run (preemption may
// make room by evicting). An invalid Config answers true: the caller
// cannot judge, so Place, which reports the error, should run.
func (s *Scheduler) FitsNode(node *structs.Node, job *structs.Job, allocs []*structs.Allocation, ignoreResources bool) bool {
	switch {
	case s.err != nil:
		return true
	case node == nil || job == nil || job.Spec == nil:
		return false
	}
	if ok, _ := s.feasible(node, job); !ok {
		return false
	}
	if ignoreResources {
		return true
	}
	ok, _ := s.fit.Fit(node, liveUsage(allocs), job.Spec.Resources)
	return ok
}
