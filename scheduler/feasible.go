package scheduler

import "github.com/ciplat/ciplat/fsm/structs"

// feasibilityCheck is one cheap filter of the placement chain (Kubernetes
// calls it a Filter plugin, Nomad a FeasibilityChecker). It looks only at the
// node record and the job, never at allocations, so it runs on every node the
// source visits.
//
// Feasible returns ok, or false with the reason the node was rejected; the
// reason is a metrics key ("node draining", "constraint label.zone = b"), so
// it must be a small, stable set of strings, and Feasible must not allocate
// on the hot path. Implementations are stateless apart from shared,
// concurrency-safe caches: Place calls them from many goroutines.
type feasibilityCheck interface {
	Name() string
	Feasible(node *structs.Node, job *structs.Job) (ok bool, reason string)
}

// Compile-time proof that every check implements the interface.
var (
	_ feasibilityCheck = nodeStatusCheck{}
	_ feasibilityCheck = driverCheck{}
	_ feasibilityCheck = containerCheck{}
	_ feasibilityCheck = constraintCheck{}
)
