package scheduler

import (
	"fmt"
	"slices"
	"testing"

	"github.com/ciplat/ciplat/fsm/structs"
)

func TestTopOffers_Push(t *testing.T) {
	var top topOffers
	scores := []float64{0.3, 0.9, 0.1, 0.9, 0.5, 0.7, 0.2, 0.95, 0.5}
	for i, s := range scores {
		top.push(candidate{node: &structs.Node{ID: fmt.Sprint(i)}, score: s})
	}
	var got []string
	for i := range top.n {
		got = append(got, fmt.Sprintf("%s:%v", top.c[i].node.ID, top.c[i].score))
	}
	// Best first; ties keep the node pushed first (1 before 3, 4 before 8).
	want := []string{"7:0.95", "1:0.9", "3:0.9", "5:0.7", "4:0.5"}
	if !slices.Equal(got, want) {
		t.Errorf("top = %v, want %v", got, want)
	}
}

func TestScheduler_Rank(t *testing.T) {
	s := New(Config{})
	node := testNode("n1", 1000, 1000, "label.zone", "a")
	j := testJob("j", 500, 500)
	c := s.rank(node, j, structs.Resources{CPU: 500, MemoryMB: 500}, nil)
	if c.score != c.parts[0] || c.applies[1] {
		t.Errorf("without affinities the score is the fit score alone: %+v", c)
	}
	j.Spec.Affinities = []structs.Affinity{{Attr: "label.zone", Op: "=", Value: "a", Weight: 10}}
	c = s.rank(node, j, structs.Resources{CPU: 500, MemoryMB: 500}, nil)
	if want := (c.parts[0] + 1) / 2; c.score != want || !c.applies[1] {
		t.Errorf("score = %v, want the average %v of fit and affinity", c.score, want)
	}
}
