package scheduler

import (
	"testing"

	"github.com/ciplat/ciplat/fsm/structs"
)

func TestNodeStatusCheck_Feasible(t *testing.T) {
	tests := []struct {
		name   string
		edit   func(*structs.Node)
		ok     bool
		reason string
	}{
		{"ready", func(*structs.Node) {}, true, ""},
		{"down", func(n *structs.Node) { n.Status = structs.NodeStatusDown }, false, "node down"},
		{"down and ineligible says down", func(n *structs.Node) { n.Status, n.Eligible = structs.NodeStatusDown, false }, false, "node down"},
		{"unknown status", func(n *structs.Node) { n.Status = "initializing" }, false, "node not ready"},
		{"empty status", func(n *structs.Node) { n.Status = "" }, false, "node not ready"},
		{"ineligible", func(n *structs.Node) { n.Eligible = false }, false, "node ineligible"},
		{"draining", func(n *structs.Node) { n.Drain = true }, false, "node draining"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := testNode("n1", 1000, 1000)
			tt.edit(n)
			ok, reason := nodeStatusCheck{}.Feasible(n, testJob("j", 1, 1))
			if ok != tt.ok || reason != tt.reason {
				t.Errorf("Feasible = %v, %q; want %v, %q", ok, reason, tt.ok, tt.reason)
			}
		})
	}
}
