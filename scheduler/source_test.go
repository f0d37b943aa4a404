package scheduler

import (
	"math/rand/v2"
	"testing"
)

func TestNodeSource_Next(t *testing.T) {
	for _, n := range []int{0, 1, 2, 3, 10, 64, 97, 1000} {
		for seed := range uint64(20) {
			rng := rand.New(rand.NewPCG(seed, 1))
			src := newNodeSource(n, rng)
			seen := make([]bool, n)
			var order []int
			for {
				i, ok := src.Next()
				if !ok {
					break
				}
				if i < 0 || i >= n || seen[i] {
					t.Fatalf("n=%d seed=%d: index %d out of range or repeated", n, seed, i)
				}
				seen[i] = true
				order = append(order, i)
			}
			if len(order) != n {
				t.Fatalf("n=%d seed=%d: visited %d nodes, want all", n, seed, len(order))
			}
			again := newNodeSource(n, rand.New(rand.NewPCG(seed, 1)))
			for _, want := range order {
				if got, _ := again.Next(); got != want {
					t.Fatalf("n=%d seed=%d: order differs for the same seed", n, seed)
				}
			}
		}
	}
	// Different seeds start in different places.
	starts := map[int]bool{}
	for seed := range uint64(50) {
		src := newNodeSource(1000, rand.New(rand.NewPCG(seed, 2)))
		i, _ := src.Next()
		starts[i] = true
	}
	if len(starts) < 40 {
		t.Errorf("50 seeds gave only %d distinct starting nodes", len(starts))
	}
}
