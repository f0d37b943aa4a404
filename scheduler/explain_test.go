package scheduler

import (
	"testing"

	"github.com/ciplat/ciplat/fsm/structs"
)

func TestExplain(t *testing.T) {
	tests := []struct {
		name string
		m    *structs.PlacementMetrics
		want string
	}{
		{"nil", nil, "no placement metrics"},
		{"no nodes", &structs.PlacementMetrics{}, "no nodes in the cluster"},
		{"the example", &structs.PlacementMetrics{
			NodesEvaluated: 5, NodesFiltered: 2, NodesExhausted: 3,
			FilteredBy:  map[string]int{"constraint label.zone = b": 2},
			ExhaustedBy: map[string]int{"memory": 3},
		}, "3 nodes lacked memory, 2 failed constraint label.zone = b"},
		{"every reason, most frequent first", &structs.PlacementMetrics{
			NodesEvaluated: 14, NodesFiltered: 10, NodesExhausted: 4,
			FilteredBy: map[string]int{
				"node down": 1, "node ineligible": 2, "node draining": 2,
				"missing driver docker": 1, "driver docker not healthy": 1, "no healthy driver": 1,
				"constraint arch = arm64": 2,
			},
			ExhaustedBy: map[string]int{"cpu": 1, "memory": 3},
		}, "3 nodes lacked memory, 1 node lacked cpu, 2 failed constraint arch = arm64, 2 nodes draining, " +
			"2 nodes ineligible, 1 node had driver docker not healthy, 1 node missing driver docker, " +
			"1 node had no healthy driver, 1 node down"},
		{"counts without keys", &structs.PlacementMetrics{NodesEvaluated: 3, NodesFiltered: 1, NodesExhausted: 2},
			"2 nodes lacked resources, 1 node filtered"},
		{"nothing rejected", &structs.PlacementMetrics{NodesEvaluated: 4}, "4 nodes evaluated, none rejected"},
		{"unknown reason", &structs.PlacementMetrics{NodesEvaluated: 1, NodesFiltered: 1, FilteredBy: map[string]int{"quarantined": 1}},
			"1 node: quarantined"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Explain(tt.m); got != tt.want {
				t.Errorf("Explain =\n  %q\nwant\n  %q", got, tt.want)
			}
		})
	}
}
