package scheduler

import (
	"testing"

	"github.com/ciplat/ciplat/fsm/structs"
)

func TestScheduler_FitsNode(t *testing.T) {
	s := New(Config{})
	node := testNode("n1", 4000, 4096, "label.zone", "a")
	busy := []*structs.Allocation{testAlloc("a1", "n1", 3000, 1024)}
	done := testAlloc("a2", "n1", 3000, 1024)
	done.ClientStatus = structs.AllocClientComplete
	down := testNode("n2", 4000, 4096)
	down.Status = structs.NodeStatusDown
	zoneB := testJob("zone-b", 100, 64)
	zoneB.Spec.Constraints = []structs.Constraint{{Attr: "label.zone", Op: "=", Value: "b"}}
	podman := testJob("podman", 100, 64)
	podman.Spec.Driver = "podman"

	for _, tc := range []struct {
		name            string
		node            *structs.Node
		job             *structs.Job
		allocs          []*structs.Allocation
		ignoreResources bool
		want            bool
	}{
		{"fits an empty node", node, testJob("j", 2000, 1024), nil, false, true},
		{"lacks cpu beside a live allocation", node, testJob("j", 2000, 1024), busy, false, false},
		{"a finished allocation holds nothing", node, testJob("j", 2000, 1024), []*structs.Allocation{done}, false, true},
		{"preemption: resources ignored", node, testJob("j", 2000, 1024), busy, true, true},
		{"node down", down, testJob("j", 100, 64), nil, true, false},
		{"constraint fails", node, zoneB, nil, false, false},
		{"driver missing", node, podman, nil, true, false},
		{"no node", nil, testJob("j", 100, 64), nil, false, false},
		{"no spec", node, &structs.Job{ID: "x"}, nil, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := s.FitsNode(tc.node, tc.job, tc.allocs, tc.ignoreResources); got != tc.want {
				t.Errorf("FitsNode = %v, want %v", got, tc.want)
			}
		})
	}
	if bad := New(Config{Algorithm: "random"}); !bad.FitsNode(down, podman, nil, false) {
		t.Error("an invalid configuration cannot judge: FitsNode must answer true so that Place reports the error")
	}
}
