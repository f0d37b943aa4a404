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

// driverCheck rejects a node that cannot start the job's worker:
//
//   - a job that names a driver (JobSpec.Driver) needs it present and
//     healthy in node.Drivers ("missing driver docker", "driver docker not
//     healthy");
//   - a job with an image that names none needs a healthy container driver
//     (structs.ContainerDrivers: docker or kubernetes), "no container
//     driver for image X" otherwise: an image never runs on the host by
//     accident; `driver: exec` says the host is meant, and then the image
//     is ignored;
//   - any other job needs at least one healthy driver.
type driverCheck struct {
	m *matcher // holds the cache of reason strings
}

// Name names the check.
func (driverCheck) Name() string { return "driver" }

// Feasible reports whether the node has the driver the job needs, healthy.
func (d driverCheck) Feasible(node *structs.Node, job *structs.Job) (bool, string) {
	name, image := "", ""
	if job.Spec != nil {
		name, image = job.Spec.Driver, job.Spec.Image
	}
	switch {
	case name == "" && image != "":
		for _, c := range structs.ContainerDrivers {
			if info := node.Drivers[c]; info != nil && info.Healthy {
				return true, ""
			}
		}
		return false, d.m.reason(reasonKey{kind: reasonNoContainerDriver, value: image})
	case name == "":
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
