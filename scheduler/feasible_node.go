package scheduler

import "github.com/ciplat/ciplat/fsm/structs"

// Rejection reasons of nodeStatusCheck.
const (
	reasonNodeDown       = "node down"
	reasonNodeNotReady   = "node not ready"
	reasonNodeIneligible = "node ineligible"
	reasonNodeDraining   = "node draining"
)

// nodeStatusCheck rejects a node that may not take new work: down (or in any
// status but ready), made ineligible by an operator, or draining.
type nodeStatusCheck struct{}

// Name names the check.
func (nodeStatusCheck) Name() string { return "node-status" }

// Feasible reports whether the node is ready, eligible and not draining.
func (nodeStatusCheck) Feasible(node *structs.Node, _ *structs.Job) (bool, string) {
	switch {
	case node.Status == structs.NodeStatusDown:
		return false, reasonNodeDown
	case node.Status != structs.NodeStatusReady:
		return false, reasonNodeNotReady
	case !node.Eligible:
		return false, reasonNodeIneligible
	case node.Drain:
		return false, reasonNodeDraining
	}
	return true, ""
}
