package server

import (
	"github.com/ciplat/ciplat/fsm/state"
	"github.com/ciplat/ciplat/scheduler"
)

// The state store's snapshot is the scheduler's view of the cluster: Place
// and Preempt take it as their State and PreemptionState. PipelineState is
// optional (Place looks for it with a type assertion), so losing it would
// only make spread and anti-affinity walk every node's allocations instead
// of an index; these lines make that a compile error.
var (
	_ scheduler.State           = (*state.StateSnapshot)(nil)
	_ scheduler.PipelineState   = (*state.StateSnapshot)(nil)
	_ scheduler.PreemptionState = (*state.StateSnapshot)(nil)
)
