package planapply

import (
	"sync"

	"github.com/ciplat/ciplat/fsm/state"
	"github.com/ciplat/ciplat/fsm/structs"
)

// inflightPlans are the placements and evictions of plan entries proposed
// to Raft and not yet applied. The applier counts them on top of its
// snapshot; an entry's allocations that the snapshot already shows are
// not counted twice. Evictions in flight free nothing yet (conservative)
// but may not be claimed again.
type inflightPlans struct {
	mu      sync.Mutex
	next    uint64
	entries map[uint64]*inflightEntry
}

// inflightEntry is one proposed plan entry, indexed for the checks.
type inflightEntry struct {
	byNode map[string][]*structs.Allocation
	// byPipeline holds the placements of pipelines (ID non-empty).
	byPipeline map[string][]*structs.Allocation
	evicts     map[string]bool
	// applied is closed once the entry applied (or failed).
	applied chan struct{}
}

func newInflightPlans() *inflightPlans {
	return &inflightPlans{entries: map[uint64]*inflightEntry{}}
}

func (f *inflightPlans) add(req *structs.PlanApplyRequest) uint64 {
	e := &inflightEntry{byNode: map[string][]*structs.Allocation{}, byPipeline: map[string][]*structs.Allocation{},
		evicts: map[string]bool{}, applied: make(chan struct{})}
	for _, a := range req.Allocs {
		e.byNode[a.NodeID] = append(e.byNode[a.NodeID], a)
		if a.PipelineID != "" {
			e.byPipeline[a.PipelineID] = append(e.byPipeline[a.PipelineID], a)
		}
	}
	for _, p := range req.Preemptions {
		e.evicts[p.AllocID] = true
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.next++
	f.entries[f.next] = e
	return f.next
}

func (f *inflightPlans) remove(token uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if e := f.entries[token]; e != nil {
		close(e.applied)
		delete(f.entries, token)
	}
}

// pending returns channels closed when the entries in flight now applied.
func (f *inflightPlans) pending() []chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]chan struct{}, 0, len(f.entries))
	for _, e := range f.entries {
		out = append(out, e.applied)
	}
	return out
}

// view returns the entries in flight now. An entry is never changed once
// added, so the view is read without the lock.
func (f *inflightPlans) view() inflightView {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(inflightView, 0, len(f.entries))
	for _, e := range f.entries {
		out = append(out, e)
	}
	return out
}

// inflightView is the plan entries in flight when the applier began a
// batch, captured before its state snapshot (see applyPlans).
type inflightView []*inflightEntry

// held is what in-flight placements not yet in snap hold on the node.
func (v inflightView) held(snap *state.StateSnapshot, nodeID string) structs.Resources {
	var r structs.Resources
	for _, e := range v {
		for _, a := range e.byNode[nodeID] {
			if got, _ := snap.AllocByID(nil, a.ID); got == nil {
				r = r.Add(a.Resources)
			}
		}
	}
	return r
}

// pipeline returns the in-flight placements of the pipeline not yet in
// snap (those in snap the re-check finds there, by create index).
func (v inflightView) pipeline(snap *state.StateSnapshot, pipelineID string) []*structs.Allocation {
	var out []*structs.Allocation
	for _, e := range v {
		for _, a := range e.byPipeline[pipelineID] {
			if got, _ := snap.AllocByID(nil, a.ID); got == nil {
				out = append(out, a)
			}
		}
	}
	return out
}

// evicting reports whether an in-flight entry evicts the allocation.
func (v inflightView) evicting(allocID string) bool {
	for _, e := range v {
		if e.evicts[allocID] {
			return true
		}
	}
	return false
}
