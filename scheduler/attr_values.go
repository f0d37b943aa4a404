package scheduler

import (
	"sync"
	"sync/atomic"

	"github.com/ciplat/ciplat/fsm/structs"
)

// attrValues counts the distinct values a node attribute takes across a
// node list, cached for the last list asked about. Spread needs it to tell
// "the pipeline runs on every value of label.zone" (then the least-used
// value is as good as it gets) from "some value runs nothing of it yet";
// counting walks every node, so it is done once per node list and
// attribute, not per placement. The state store hands every snapshot the
// same slice until a node changes, so the cache holds across snapshots.
//
// Concurrency: Place calls distinct from many workers at once. Workers on
// snapshots with different node lists replace each other's entry: that
// costs a recount, never a wrong answer, since an entry is keyed by the
// list's first element's address and length and the entry keeps that
// array alive (no address reuse).
type attrValues struct {
	cur atomic.Pointer[attrValuesEntry]
}

type attrValuesEntry struct {
	first  **structs.Node // &nodes[0]
	n      int
	counts sync.Map // attribute → int
}

// distinct returns how many distinct values attr takes on nodes.
func (c *attrValues) distinct(nodes []*structs.Node, attr string) int {
	if len(nodes) == 0 {
		return 0
	}
	e := c.cur.Load()
	if e == nil || e.first != &nodes[0] || e.n != len(nodes) {
		e = &attrValuesEntry{first: &nodes[0], n: len(nodes)}
		c.cur.Store(e)
	}
	if v, ok := e.counts.Load(attr); ok {
		return v.(int)
	}
	seen := make(map[string]struct{})
	for _, n := range nodes {
		if n == nil {
			continue
		}
		if v, ok := lookupAttr(n, attr); ok {
			seen[v] = struct{}{}
		}
	}
	e.counts.Store(attr, len(seen))
	return len(seen)
}
