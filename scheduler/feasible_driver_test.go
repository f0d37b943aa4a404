package scheduler

import (
	"testing"

	"github.com/ciplat/ciplat/fsm/structs"
)

func TestDriverCheck_Feasible(t *testing.T) {
	healthy := &structs.DriverInfo{Detected: true, Healthy: true}
	sick := &structs.DriverInfo{Detected: true, Healthy: false, Reason: "daemon not answering"}
	tests := []struct {
		name    string
		drivers map[string]*structs.DriverInfo
		driver  string
		ok      bool
		reason  string
	}{
		{"named and healthy", map[string]*structs.DriverInfo{"docker": healthy}, "docker", true, ""},
		{"named and missing", map[string]*structs.DriverInfo{"exec": healthy}, "docker", false, "missing driver docker"},
		{"named, nil info", map[string]*structs.DriverInfo{"docker": nil}, "docker", false, "missing driver docker"},
		{"named, no drivers at all", nil, "docker", false, "missing driver docker"},
		{"named and unhealthy", map[string]*structs.DriverInfo{"docker": sick, "exec": healthy}, "docker", false, "driver docker not healthy"},
		{"unnamed, one healthy", map[string]*structs.DriverInfo{"docker": sick, "exec": healthy}, "", true, ""},
		{"unnamed, none healthy", map[string]*structs.DriverInfo{"docker": sick, "x": nil}, "", false, "no healthy driver"},
		{"unnamed, no drivers", nil, "", false, "no healthy driver"},
	}
	check := driverCheck{m: newMatcher()}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := testNode("n1", 1000, 1000)
			n.Drivers = tt.drivers
			j := testJob("j", 1, 1)
			j.Spec.Driver = tt.driver
			ok, reason := check.Feasible(n, j)
			if ok != tt.ok || reason != tt.reason {
				t.Errorf("Feasible = %v, %q; want %v, %q", ok, reason, tt.ok, tt.reason)
			}
		})
	}
}
