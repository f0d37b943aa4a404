package scheduler

import (
	"math"
	"testing"

	"github.com/ciplat/ciplat/fsm/structs"
)

func TestBinPackScorer_Score(t *testing.T) {
	node := testNode("n1", 1000, 2000)
	tests := []struct {
		name string
		util structs.Resources
		want float64
	}{
		{"idle", structs.Resources{}, 0},
		{"full", structs.Resources{CPU: 1000, MemoryMB: 2000}, 1},
		// Nomad: 20 − (10^0.5 + 10^0.5) = 13.675…, normalised by 18.
		{"half", structs.Resources{CPU: 500, MemoryMB: 1000}, (20 - 2*math.Sqrt(10)) / 18},
		{"cpu full only", structs.Resources{CPU: 1000}, (20 - 1 - 10) / 18.0},
		{"over capacity clamps", structs.Resources{CPU: 5000, MemoryMB: 5000}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, applies := binPackScorer{}.Score(node, nil, tt.util)
			if !applies || math.Abs(got-tt.want) > 1e-9 {
				t.Errorf("Score = %v, %v; want %v, true", got, applies, tt.want)
			}
		})
	}
	// Fuller is better, and each dimension counts.
	a, _ := binPackScorer{}.Score(node, nil, structs.Resources{CPU: 900, MemoryMB: 1800})
	b, _ := binPackScorer{}.Score(node, nil, structs.Resources{CPU: 500, MemoryMB: 1800})
	if a <= b {
		t.Errorf("fuller node scored %v, emptier %v; want fuller higher", a, b)
	}
	// A node without capacity (all reserved) counts as full, without dividing by zero.
	empty := testNode("n2", 0, 0)
	if got, _ := (binPackScorer{}).Score(empty, nil, structs.Resources{}); got != 1 {
		t.Errorf("Score on zero capacity = %v, want 1", got)
	}
}

func TestSpreadFitScorer_Score(t *testing.T) {
	node := testNode("n1", 1000, 2000)
	for _, util := range []structs.Resources{{}, {CPU: 1000, MemoryMB: 2000}, {CPU: 500, MemoryMB: 1000}, {CPU: 100, MemoryMB: 1900}} {
		bp, _ := binPackScorer{}.Score(node, nil, util)
		sp, applies := spreadFitScorer{}.Score(node, nil, util)
		if !applies || math.Abs(bp+sp-1) > 1e-9 {
			t.Errorf("util %+v: binpack %v + spread %v = %v, want 1", util, bp, sp, bp+sp)
		}
	}
	idle, _ := spreadFitScorer{}.Score(node, nil, structs.Resources{})
	busy, _ := spreadFitScorer{}.Score(node, nil, structs.Resources{CPU: 800, MemoryMB: 1600})
	if idle != 1 || busy >= idle {
		t.Errorf("spread idle = %v, busy = %v; want 1 and less", idle, busy)
	}
}
