package structs

import "testing"

func TestNode_CopyNilDriver(t *testing.T) {
	n := &Node{ID: "n1", Drivers: map[string]*DriverInfo{"exec": nil, "docker": {Healthy: true}}}
	c := n.Copy()
	if d, ok := c.Drivers["exec"]; !ok || d != nil {
		t.Fatalf("copy of a nil driver entry = %v, %v; want a nil entry kept", d, ok)
	}
	c.Drivers["docker"].Healthy = false
	if !n.Drivers["docker"].Healthy {
		t.Fatal("the copy shares its driver info with the original")
	}
}
