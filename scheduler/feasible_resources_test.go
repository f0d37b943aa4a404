package scheduler

import (
	"testing"

	"github.com/ciplat/ciplat/fsm/structs"
)

func TestAllocsFit(t *testing.T) {
	node := testNode("n1", 4000, 8192)
	node.Reserved = structs.Resources{CPU: 500, MemoryMB: 1024} // capacity 3500 / 7168
	done := testAlloc("done", "n1", 3000, 7000)
	done.ClientStatus = structs.AllocClientComplete
	stopped := testAlloc("stopped", "n1", 3000, 7000)
	stopped.DesiredStatus, stopped.ClientStatus = structs.AllocDesiredStop, structs.AllocClientPending
	stopping := testAlloc("stopping", "n1", 1000, 1000) // asked to stop, still running: holds its resources
	stopping.DesiredStatus = structs.AllocDesiredStop
	tests := []struct {
		name   string
		allocs []*structs.Allocation
		extra  structs.Resources
		ok     bool
		dim    string
	}{
		{"empty node, exact fit", nil, structs.Resources{CPU: 3500, MemoryMB: 7168}, true, ""},
		{"reserved is not handed out", nil, structs.Resources{CPU: 3501, MemoryMB: 1}, false, "cpu"},
		{"memory", nil, structs.Resources{CPU: 1, MemoryMB: 7169}, false, "memory"},
		{"cpu is named first", nil, structs.Resources{CPU: 9999, MemoryMB: 99999}, false, "cpu"},
		{"live allocs count", []*structs.Allocation{testAlloc("a", "n1", 3000, 100)}, structs.Resources{CPU: 501, MemoryMB: 1}, false, "cpu"},
		{"finished allocs do not", []*structs.Allocation{done, stopped}, structs.Resources{CPU: 3500, MemoryMB: 7168}, true, ""},
		{"stopping but running does", []*structs.Allocation{stopping}, structs.Resources{CPU: 3000, MemoryMB: 1}, false, "cpu"},
		{"nil allocs are skipped", []*structs.Allocation{nil, testAlloc("a", "n1", 100, 100)}, structs.Resources{CPU: 3400, MemoryMB: 7068}, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, dim := AllocsFit(node, tt.allocs, tt.extra)
			if ok != tt.ok || dim != tt.dim {
				t.Errorf("AllocsFit = %v, %q; want %v, %q", ok, dim, tt.ok, tt.dim)
			}
		})
	}
	if ok, dim := AllocsFit(nil, nil, structs.Resources{}); ok || dim == "" {
		t.Errorf("AllocsFit(nil node) = %v, %q; want false and a reason", ok, dim)
	}
}
