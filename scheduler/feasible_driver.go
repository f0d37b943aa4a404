package scheduler

import "github.com/ciplat/ciplat/fsm/structs"

// reasonNoHealthyDriver rejects a node with no healthy driver at all.
const reasonNoHealthyDriver = "no healthy driver"

// driverCheck rejects a node that cannot start the job's worker. A job that
// names a driver (JobSpec.Driver) needs it present and healthy in
// node.Drivers ("missing driver docker", "driver docker not healthy"); a job
// that names none needs at least one healthy driver.
type driverCheck struct {
	m *matcher // holds the cache of reason strings
}

// Name names the check.
func (driverCheck) Name() string { return "driver" }

// Feasible reports whether the node has the driver the job needs, healthy.
func (d driverCheck) Feasible(node *structs.Node, job *structs.Job) (bool, string) {
	name := ""
	if job.Spec != nil {
		name = job.Spec.Driver
	}
	if name == "" {
		for _, info := range node.Drivers {
			if info != nil && info.Healthy {
				return true, ""
			}
		}
		return false, reasonNoHealthyDriver
	}
	info := node.Drivers[name]
	switch {
	case info == nil:
		return false, d.m.reason(reasonKey{kind: reasonMissingDriver, value: name})
	case !info.Healthy:
		return false, d.m.reason(reasonKey{kind: reasonUnhealthyDriver, value: name})
	}
	return true, ""
}
