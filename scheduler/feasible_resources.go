package scheduler

import "github.com/ciplat/ciplat/fsm/structs"

// resourceCheck is the last filter: the node's live allocations plus the
// job's ask must fit the node's capacity (total minus reserved). Unlike the
// cheap checks it needs the node's allocations, so it runs only on nodes that
// passed them; a node it rejects is counted as exhausted, per dimension.
type resourceCheck struct{}

// Name names the check.
func (resourceCheck) Name() string { return "resources" }

// Fit reports whether ask fits on the node given used, the resources its live
// allocations hold; when it does not, it names the first exhausted dimension
// ("cpu" or "memory").
func (resourceCheck) Fit(node *structs.Node, used, ask structs.Resources) (bool, string) {
	return used.Add(ask).Fits(node.Capacity())
}

// liveUsage sums the resources of the allocations that still hold their node
// (structs.Allocation.Live).
func liveUsage(allocs []*structs.Allocation) structs.Resources {
	var used structs.Resources
	for _, a := range allocs {
		if a != nil && a.Live() {
			used.CPU += a.Resources.CPU
			used.MemoryMB += a.Resources.MemoryMB
		}
	}
	return used
}

// AllocsFit is the resource check the plan applier re-runs against the
// newest state before it commits a placement: the live allocations of allocs
// (the node's allocations, live or finished) plus extra must fit the node's
// capacity. When they do not, the string names the exhausted dimension
// ("cpu" or "memory"). It is the same check Place applies, so a plan made on
// an up-to-date snapshot always passes.
func AllocsFit(node *structs.Node, allocs []*structs.Allocation, extra structs.Resources) (bool, string) {
	if node == nil {
		return false, "node"
	}
	return resourceCheck{}.Fit(node, liveUsage(allocs), extra)
}
