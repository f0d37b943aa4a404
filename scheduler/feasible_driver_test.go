package scheduler

import (
	"math/rand/v2"
	"testing"

	"github.com/ciplat/ciplat/fsm/structs"
)

// TestDriverCheck_Feasible runs the driver and container checks in
// Place's order.
func TestDriverCheck_Feasible(t *testing.T) {
	healthy := &structs.DriverInfo{Detected: true, Healthy: true}
	sick := &structs.DriverInfo{Detected: true, Healthy: false, Reason: "daemon not answering"}
	tests := []struct {
		name    string
		drivers map[string]*structs.DriverInfo
		driver  string
		ok      bool
		reason  string
		image   string
	}{
		{"named and healthy", map[string]*structs.DriverInfo{"docker": healthy}, "docker", true, "", ""},
		{"named and missing", map[string]*structs.DriverInfo{"exec": healthy}, "docker", false, "missing driver docker", ""},
		{"named, nil info", map[string]*structs.DriverInfo{"docker": nil}, "docker", false, "missing driver docker", ""},
		{"named, no drivers at all", nil, "docker", false, "missing driver docker", ""},
		{"named and unhealthy", map[string]*structs.DriverInfo{"docker": sick, "exec": healthy}, "docker", false, "driver docker not healthy", ""},
		{"unnamed, one healthy", map[string]*structs.DriverInfo{"docker": sick, "exec": healthy}, "", true, "", ""},
		{"unnamed, none healthy", map[string]*structs.DriverInfo{"docker": sick, "x": nil}, "", false, "no healthy driver", ""},
		{"unnamed, no drivers", nil, "", false, "no healthy driver", ""},
		// Issue 12: a job with an image and no driver never runs on the host.
		{"image, exec only", map[string]*structs.DriverInfo{"exec": healthy}, "", false, "no container driver for image no/such-image:1", "no/such-image:1"},
		{"image, docker sick", map[string]*structs.DriverInfo{"exec": healthy, "docker": sick}, "", false, "no container driver for image no/such-image:1", "no/such-image:1"},
		{"image, docker healthy", map[string]*structs.DriverInfo{"exec": healthy, "docker": healthy}, "", true, "", "busybox:1"},
		{"image, kubernetes healthy", map[string]*structs.DriverInfo{"kubernetes": healthy}, "", true, "", "busybox:1"},
		{"image, plugin only", map[string]*structs.DriverInfo{"shell": healthy}, "", false, "no container driver for image busybox:1", "busybox:1"},
		{"image with driver: exec", map[string]*structs.DriverInfo{"exec": healthy}, "exec", true, "", "busybox:1"},
		{"image with driver: exec, exec missing", map[string]*structs.DriverInfo{"docker": healthy}, "exec", false, "missing driver exec", "busybox:1"},
	}
	m := newMatcher()
	checks := []feasibilityCheck{driverCheck{m: m}, containerCheck{m: m}} // as Place runs them
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := testNode("n1", 1000, 1000)
			n.Drivers = tt.drivers
			j := testJob("j", 1, 1)
			j.Spec.Driver = tt.driver
			j.Spec.Image = tt.image
			ok, reason := true, ""
			for _, c := range checks {
				if ok, reason = c.Feasible(n, j); !ok {
					break
				}
			}
			if ok != tt.ok || reason != tt.reason {
				t.Errorf("Feasible = %v, %q; want %v, %q", ok, reason, tt.ok, tt.reason)
			}
		})
	}
}

// TestExplain_NoContainerDriver: a job with an image that every node
// rejected for want of a container driver is explained in one sentence
// that says what to do; mixed reasons keep the usual counts.
func TestExplain_NoContainerDriver(t *testing.T) {
	s := New(Config{Limit: -1})
	var nodes []*structs.Node
	for _, id := range []string{"n1", "n2"} {
		n := testNode(id, 1000, 1000)
		n.Drivers = map[string]*structs.DriverInfo{"exec": {Detected: true, Healthy: true}}
		nodes = append(nodes, n)
	}
	st := newMemState(nodes, nil)
	j := testJob("j", 1, 1)
	j.Spec.Image = "no/such-image:1"
	plan, err := s.Place(st, testEval(j), j, rand.New(rand.NewPCG(1, 2)))
	if err != nil {
		t.Fatal(err)
	}
	if plan.Placement != nil {
		t.Fatalf("a job with an image was placed on an exec-only node: %+v", plan.Placement)
	}
	want := "no node has a container driver for image no/such-image:1 (2 nodes without a healthy docker or kubernetes); enable one on a node, or write driver: exec to run the job on the host"
	if got := Explain(plan.Metrics); got != want {
		t.Errorf("Explain = %q\nwant      %q", got, want)
	}

	j.Spec.Driver = "exec" // written in the spec: runs on the host, image ignored
	plan, err = s.Place(st, testEval(j), j, rand.New(rand.NewPCG(1, 2)))
	if err != nil || plan.Placement == nil {
		t.Fatalf("driver: exec not placed: %v %v", err, Explain(plan.Metrics))
	}

	mixed := &structs.PlacementMetrics{NodesFiltered: 3, FilteredBy: map[string]int{"no container driver for image x": 2, "node draining": 1}}
	if got := Explain(mixed); got != "2 nodes had no container driver for image x, 1 node draining" {
		t.Errorf("mixed: %q", got)
	}
}
