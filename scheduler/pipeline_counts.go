package scheduler

import (
	"fmt"
	"slices"
	"strings"

	"github.com/ciplat/ciplat/fsm/structs"
)

// PipelineState is an optional extension of State: a view that can list a
// pipeline's allocations directly (the state store's snapshot does, from an
// index on the allocs table) lets spread and anti-affinity count them in
// O(allocations of the pipeline). A State without it still works: Place then
// walks every node's allocations once per placement of a job that asks for
// spread or anti-affinity, which is correct but O(allocations).
type PipelineState interface {
	// AllocsByPipeline returns the pipeline's allocations, live and finished.
	AllocsByPipeline(pipelineID string) ([]*structs.Allocation, error)
}

// pipelineCounts are the live allocations of a job's pipeline (other jobs of
// it: the job's own earlier attempts are left out), counted once per
// placement before any node is scored. Spread needs the counts of every node
// of an attribute value, not only of the sampled ones, which is why they are
// taken from the whole pipeline rather than from AllocsByNode of the nodes
// being scored.
type pipelineCounts struct {
	// byNode counts the live allocations per node ID.
	byNode map[string]int
	// byValue[i] counts them per value of job.Spec.Spread[i].Attr; maxValue[i]
	// is the largest of those counts.
	byValue  []map[string]int
	maxValue []int
	// minValue[i] is the fewest live allocations any value of
	// job.Spec.Spread[i].Attr in the cluster runs: 0 while some value runs
	// none (the default, also when not learnt: see learnMin).
	minValue []int
}

// needsPipelineCounts reports whether the job has a scorer that reads them.
func needsPipelineCounts(job *structs.Job) bool {
	return job.Spec != nil && (len(job.Spec.Spread) > 0 || job.Spec.AntiAffinity)
}

// countPipeline builds the pipelineCounts of job from st; nodes is st.Nodes(),
// sorted by ID, used to read the attribute values of the nodes allocations
// run on. It returns nil for a job that needs none.
func countPipeline(st State, nodes []*structs.Node, job *structs.Job) (*pipelineCounts, error) {
	if !needsPipelineCounts(job) {
		return nil, nil
	}
	pc := &pipelineCounts{byNode: make(map[string]int)}
	add := func(a *structs.Allocation) {
		if countsForPipeline(job, a) {
			pc.byNode[a.NodeID]++
		}
	}
	if ps, ok := st.(PipelineState); ok {
		allocs, err := ps.AllocsByPipeline(job.PipelineID)
		if err != nil {
			return nil, fmt.Errorf("scheduler: allocations of pipeline %s: %w", job.PipelineID, err)
		}
		for _, a := range allocs {
			add(a)
		}
	} else {
		for _, n := range nodes {
			if n == nil {
				continue
			}
			allocs, err := st.AllocsByNode(n.ID)
			if err != nil {
				return nil, fmt.Errorf("scheduler: allocations of node %s: %w", n.ID, err)
			}
			for _, a := range allocs {
				add(a)
			}
		}
	}
	spreads := job.Spec.Spread
	pc.byValue = make([]map[string]int, len(spreads))
	pc.maxValue = make([]int, len(spreads))
	pc.minValue = make([]int, len(spreads))
	for i := range spreads {
		pc.byValue[i] = make(map[string]int)
	}
	for nodeID, c := range pc.byNode {
		node := findNode(nodes, nodeID)
		if node == nil {
			continue // the node is gone; its allocations count for no value
		}
		for i := range spreads {
			v, ok := lookupAttr(node, spreads[i].Attr)
			if !ok {
				continue
			}
			pc.byValue[i][v] += c
			pc.maxValue[i] = max(pc.maxValue[i], pc.byValue[i][v])
		}
	}
	return pc, nil
}

// learnMin sets minValue for each spread whose attribute takes no value in
// the cluster (nodes) that the pipeline does not run on: then the
// least-used value is the best a node can offer, and a node of it needs no
// wider search (see Scheduler.limits). values caches the count of distinct
// values per node list.
func (pc *pipelineCounts) learnMin(nodes []*structs.Node, job *structs.Job, values *attrValues) {
	if pc == nil {
		return
	}
	for i, sp := range job.Spec.Spread {
		if len(pc.byValue[i]) == 0 || len(pc.byValue[i]) < values.distinct(nodes, sp.Attr) {
			continue // some value runs nothing of the pipeline: 0
		}
		least := pc.maxValue[i]
		for _, c := range pc.byValue[i] {
			least = min(least, c)
		}
		pc.minValue[i] = least
	}
}

// findNode returns the node with the ID from a slice sorted by ID, or nil.
func findNode(nodes []*structs.Node, id string) *structs.Node {
	i, ok := slices.BinarySearchFunc(nodes, id, func(n *structs.Node, id string) int {
		if n == nil {
			return -1
		}
		return strings.Compare(n.ID, id)
	})
	if !ok {
		return nil
	}
	return nodes[i]
}
