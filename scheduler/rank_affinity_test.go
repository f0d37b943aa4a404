package scheduler

import (
	"math"
	"testing"

	"github.com/ciplat/ciplat/fsm/structs"
)

func TestAffinityScorer_Score(t *testing.T) {
	node := testNode("n1", 1000, 1000, "label.zone", "a", "label.disk", "ssd")
	tests := []struct {
		name    string
		affs    []structs.Affinity
		want    float64
		applies bool
	}{
		{"none", nil, 0, false},
		{"all zero weights", []structs.Affinity{{Attr: "label.zone", Op: "=", Value: "a"}}, 0, false},
		{"one matching", []structs.Affinity{{Attr: "label.zone", Op: "=", Value: "a", Weight: 50}}, 1, true},
		{"one not matching", []structs.Affinity{{Attr: "label.zone", Op: "=", Value: "b", Weight: 50}}, 0, true},
		{"avoid matching", []structs.Affinity{{Attr: "label.zone", Op: "=", Value: "a", Weight: -100}}, -1, true},
		{"mixed", []structs.Affinity{
			{Attr: "label.zone", Op: "=", Value: "a", Weight: 50},    // matches
			{Attr: "label.disk", Op: "=", Value: "hdd", Weight: 30},  // does not
			{Attr: "label.disk", Op: "=", Value: "ssd", Weight: -20}, // matches, avoided
		}, (50.0 - 20) / 100, true},
		{"invalid regexp matches nothing", []structs.Affinity{{Attr: "label.zone", Op: "regexp", Value: "(", Weight: 100}}, 0, true},
	}
	a := affinityScorer{m: newMatcher()}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j := testJob("j", 1, 1)
			j.Spec.Affinities = tt.affs
			got, applies := a.Score(node, j, structs.Resources{})
			if applies != tt.applies || math.Abs(got-tt.want) > 1e-9 {
				t.Errorf("Score = %v, %v; want %v, %v", got, applies, tt.want, tt.applies)
			}
		})
	}
}
