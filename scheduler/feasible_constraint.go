package scheduler

import "github.com/ciplat/ciplat/fsm/structs"

// constraintCheck rejects a node whose attributes fail one of the job's
// constraints; the reason names the first that failed ("constraint
// label.zone = b"), or says the constraint is invalid ("constraint os regexp
// ( is invalid: missing closing )"). An invalid constraint rejects every
// node: it never panics and never matches.
type constraintCheck struct {
	m *matcher
}

// Name names the check.
func (constraintCheck) Name() string { return "constraint" }

// Feasible reports whether the node satisfies every constraint of the job.
func (c constraintCheck) Feasible(node *structs.Node, job *structs.Job) (bool, string) {
	if job.Spec == nil {
		return true, ""
	}
	cs := job.Spec.Constraints
	for i := range cs {
		if !c.m.Match(node, cs[i].Attr, cs[i].Op, cs[i].Value) {
			return false, c.m.reason(reasonKey{kind: reasonConstraint, attr: cs[i].Attr, op: cs[i].Op, value: cs[i].Value})
		}
	}
	return true, ""
}
