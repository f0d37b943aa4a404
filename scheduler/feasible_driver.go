package scheduler

import (
	"strings"

	"github.com/ciplat/ciplat/fsm/structs"
)

// reasonNoHealthyDriver rejects a node with no healthy driver at all.
const reasonNoHealthyDriver = "no healthy driver"

// reasonNoContainerPrefix starts the reason of a node rejected by the
// container rule: "no container driver for image busybox:1".
const reasonNoContainerPrefix = "no container driver for image "

// driverCheck rejects a node that cannot start the job's worker. A job
// that names a driver (JobSpec.Driver) needs it present and healthy in
// node.Drivers ("missing driver docker", "driver docker not healthy"); a
// job that names none needs at least one healthy driver (and, with an
// image, a container driver: containerCheck).
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

// containerCheck rejects, for a job with an image and no driver, a node
// without a healthy container driver (structs.ContainerDrivers: docker or
// kubernetes): "no container driver for image X". An image never runs on
// the host by accident (issue 12: it ran with exec); `driver: exec` says
// the host is meant, and then the image is ignored and this check passes.
type containerCheck struct {
	m *matcher // holds the cache of reason strings
}

// Name names the check.
func (containerCheck) Name() string { return "container" }

// Feasible reports whether a job with an image can run in a container here.
func (c containerCheck) Feasible(node *structs.Node, job *structs.Job) (bool, string) {
	if job.Spec == nil || job.Spec.Image == "" || job.Spec.Driver != "" {
		return true, ""
	}
	for _, name := range structs.ContainerDrivers {
		if info := node.Drivers[name]; info != nil && info.Healthy {
			return true, ""
		}
	}
	return false, c.m.reason(reasonKey{kind: reasonNoContainerDriver, value: job.Spec.Image})
}

// explainNoContainer is Explain's sentence when every node was rejected by
// the container rule of driverCheck, or "".
func explainNoContainer(m *structs.PlacementMetrics) string {
	if len(m.FilteredBy) != 1 || m.NodesExhausted > 0 {
		return ""
	}
	for reason, n := range m.FilteredBy {
		image, ok := strings.CutPrefix(reason, reasonNoContainerPrefix)
		if !ok || n != m.NodesFiltered {
			return ""
		}
		return "no node has a container driver for image " + image + " (" + nodes(n) + " without a healthy " +
			strings.Join(structs.ContainerDrivers, " or ") + "); enable one on a node, or write driver: exec to run the job on the host"
	}
	return ""
}
