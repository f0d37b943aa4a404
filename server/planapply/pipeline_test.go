package planapply

import (
	"errors"
	"strings"
	"testing"

	"github.com/ciplat/ciplat/fsm/state"
	"github.com/ciplat/ciplat/fsm/structs"
)

// recheckAlloc is a live allocation of job jobID of pipeline p on the node.
func recheckAlloc(id, nodeID, jobID string) *structs.Allocation {
	return &structs.Allocation{ID: id, JobID: jobID, PipelineID: "p", NodeID: nodeID,
		Resources:     structs.Resources{CPU: 100, MemoryMB: 64},
		DesiredStatus: structs.AllocDesiredRun, ClientStatus: structs.AllocClientPending}
}

// TestRecheckPipeline: the applier's pipeline re-check counts as unseen by
// a plan exactly the siblings its snapshot missed — committed after its
// SnapshotIndex, in flight, or accepted earlier in the batch — and leaves
// jobs without spread or anti-affinity alone.
func TestRecheckPipeline(t *testing.T) {
	st, err := state.NewStateStore()
	if err != nil {
		t.Fatal(err)
	}
	nodes := []*structs.Node{
		{ID: "n1", Status: structs.NodeStatusReady, Eligible: true, Attributes: map[string]string{"label.zone": "a"}},
		{ID: "n2", Status: structs.NodeStatusReady, Eligible: true, Attributes: map[string]string{"label.zone": "a"}},
		{ID: "n3", Status: structs.NodeStatusReady, Eligible: true, Attributes: map[string]string{"label.zone": "b"}},
	}
	job := func(id string, anti bool, spread ...structs.Spread) *structs.Job {
		return &structs.Job{ID: id, PipelineID: "p", State: structs.JobPending,
			Spec: &structs.JobSpec{Name: id, AntiAffinity: anti, Spread: spread}}
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(st.UpsertNodes(10, nodes...))
	must(st.UpsertJobs(11, job("anti", true), job("spread", false, structs.Spread{Attr: "label.zone", Weight: 50}),
		job("plain", false), job("old", false), job("late", false)))
	must(st.UpsertAllocs(20, recheckAlloc("old", "n1", "old")))   // seen by plans at index ≥ 20
	must(st.UpsertAllocs(30, recheckAlloc("late", "n2", "late"))) // committed at 30
	snap, err := st.Snapshot()
	must(err)
	node := func(id string) *structs.Node { n, _ := snap.NodeByID(nil, id); return n }
	plan := func(jobID, nodeID string, snapIndex uint64) *structs.Plan {
		return &structs.Plan{JobID: jobID, SnapshotIndex: snapIndex,
			Placement: &structs.Allocation{JobID: jobID, PipelineID: "p", NodeID: nodeID}}
	}
	inflightOn := func(nodeID string) inflightView {
		f := newInflightPlans()
		f.add(&structs.PlanApplyRequest{Allocs: []*structs.Allocation{recheckAlloc("flying", nodeID, "flying")}})
		return f.view()
	}
	none := map[string][]*structs.Allocation{}

	for _, tc := range []struct {
		name     string
		plan     *structs.Plan
		batch    map[string][]*structs.Allocation
		inflight inflightView
		want     string // "" for no conflict, else a part of the reason
	}{
		{"sibling committed after the snapshot", plan("anti", "n2", 25), none, nil, "job late"},
		{"snapshot saw the sibling", plan("anti", "n2", 30), none, nil, ""},
		{"older sibling, seen", plan("anti", "n1", 25), none, nil, ""},
		{"no snapshot index: committed ones not judged", plan("anti", "n2", 0), none, nil, ""},
		{"sibling in flight", plan("anti", "n3", 30), none, inflightOn("n3"), "job flying"},
		{"sibling in flight elsewhere", plan("anti", "n3", 30), none, inflightOn("n1"), ""},
		{"sibling earlier in the batch", plan("anti", "n3", 30),
			map[string][]*structs.Allocation{"p": {recheckAlloc("b", "n3", "batch")}}, nil, "job batch"},
		{"batch sibling of another pipeline", plan("anti", "n3", 30),
			map[string][]*structs.Allocation{"q": {recheckAlloc("b", "n3", "batch")}}, nil, ""},
		{"spread: sibling in the same zone since", plan("spread", "n1", 25), none, nil, "label.zone = a (node n2)"},
		{"spread: sibling in another zone since", plan("spread", "n3", 25), none, nil, ""},
		{"no spread or anti-affinity", plan("plain", "n2", 25), none, nil, ""},
		{"job gone", plan("gone", "n2", 25), none, nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := recheckPipeline(snap, tc.plan, node(tc.plan.Placement.NodeID), tc.batch, tc.inflight)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("recheck = %v, want no conflict", err)
			case tc.want != "" && err == nil:
				t.Errorf("no conflict, want one naming %q", tc.want)
			case tc.want != "" && (!errors.Is(err, ErrPipelineConflict) || !IsConflict(err) || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("recheck = %v, want ErrPipelineConflict naming %q", err, tc.want)
			}
		})
	}
}

// TestInflightView_OutlivesRemoval: the applier captures the entries in
// flight before its state snapshot; an entry that applies (and leaves
// inflightPlans) while a batch is checked still counts from the view
// until the snapshot shows it, for capacity, evictions and the pipeline
// re-check alike. Without the view such an entry was in neither.
func TestInflightView_OutlivesRemoval(t *testing.T) {
	st, err := state.NewStateStore()
	if err != nil {
		t.Fatal(err)
	}
	f := newInflightPlans()
	a := recheckAlloc("flying", "n1", "j")
	token := f.add(&structs.PlanApplyRequest{Allocs: []*structs.Allocation{a},
		Preemptions: []*structs.Preemption{{AllocID: "victim"}}})
	view := f.view()
	f.remove(token)            // applied after the view was taken
	snap, err := st.Snapshot() // an older snapshot: it does not show the entry
	if err != nil {
		t.Fatal(err)
	}
	if got := view.held(snap, "n1"); got.CPU != 100 {
		t.Errorf("held on n1 = %+v, want the entry's 100 millicores", got)
	}
	if !view.evicting("victim") {
		t.Error("the entry's eviction is not counted")
	}
	if got := view.pipeline(snap, "p"); len(got) != 1 || got[0].ID != "flying" {
		t.Errorf("pipeline siblings in flight = %v, want the entry's allocation", got)
	}
	if len(f.view()) != 0 {
		t.Error("a removed entry is still in a new view")
	}
	// Once the snapshot shows the allocation, the view no longer counts it.
	if err := st.UpsertAllocs(5, a); err != nil {
		t.Fatal(err)
	}
	if snap, _ = st.Snapshot(); view.held(snap, "n1").CPU != 0 || len(view.pipeline(snap, "p")) != 0 {
		t.Error("an allocation the snapshot shows is counted twice")
	}
}
