package scheduler

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/ciplat/ciplat/fsm/structs"
)

// Explain turns placement metrics into the words a user reads on a pending
// job: "3 nodes lacked memory, 2 failed constraint label.zone = b". Exhausted
// dimensions come first, then filter reasons, each group most frequent first
// (ties by name), so the text is stable. It never returns "" for non-nil
// metrics: with nothing rejected it says how many nodes were evaluated.
func Explain(m *structs.PlacementMetrics) string {
	if m == nil {
		return "no placement metrics"
	}
	if m.NodesEvaluated == 0 && m.NodesFiltered == 0 && m.NodesExhausted == 0 {
		return "no nodes in the cluster"
	}
	if s := explainNoContainer(m); s != "" {
		return s // feasible_driver.go
	}
	var parts []string
	for _, e := range sortedCounts(m.ExhaustedBy) {
		parts = append(parts, fmt.Sprintf("%s lacked %s", nodes(e.n), e.key))
	}
	if len(m.ExhaustedBy) == 0 && m.NodesExhausted > 0 {
		parts = append(parts, fmt.Sprintf("%s lacked resources", nodes(m.NodesExhausted)))
	}
	for _, f := range sortedCounts(m.FilteredBy) {
		parts = append(parts, phrase(f.key, f.n))
	}
	if len(m.FilteredBy) == 0 && m.NodesFiltered > 0 {
		parts = append(parts, fmt.Sprintf("%s filtered", nodes(m.NodesFiltered)))
	}
	if len(parts) == 0 {
		return fmt.Sprintf("%s evaluated, none rejected", nodes(m.NodesEvaluated))
	}
	return strings.Join(parts, ", ")
}

// phrase says one filter reason with its count.
func phrase(reason string, n int) string {
	switch {
	case strings.HasPrefix(reason, "constraint "):
		return fmt.Sprintf("%d failed %s", n, reason)
	case strings.HasPrefix(reason, "node "):
		return fmt.Sprintf("%s %s", nodes(n), strings.TrimPrefix(reason, "node "))
	case strings.HasPrefix(reason, "missing "):
		return fmt.Sprintf("%s %s", nodes(n), reason)
	case strings.HasPrefix(reason, "driver "), strings.HasPrefix(reason, "no "):
		return fmt.Sprintf("%s had %s", nodes(n), reason)
	}
	return fmt.Sprintf("%s: %s", nodes(n), reason)
}

// nodes is "1 node" or "n nodes".
func nodes(n int) string {
	if n == 1 {
		return "1 node"
	}
	return fmt.Sprintf("%d nodes", n)
}

type keyCount struct {
	key string
	n   int
}

// sortedCounts orders a count map most frequent first, ties by key.
func sortedCounts(m map[string]int) []keyCount {
	out := make([]keyCount, 0, len(m))
	for k, n := range m {
		out = append(out, keyCount{k, n})
	}
	slices.SortFunc(out, func(a, b keyCount) int {
		if c := cmp.Compare(b.n, a.n); c != 0 {
			return c
		}
		return strings.Compare(a.key, b.key)
	})
	return out
}
