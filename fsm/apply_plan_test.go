package fsm

import (
	"testing"

	"github.com/ciplat/ciplat/fsm/structs"
)

func TestFSM_PlanApply(t *testing.T) {
	h := newHarness(t)
	h.addNode("n1")
	p, jobs := newPipeline("p1", jobSpec("build"), jobSpec("lint"))
	h.register(p, jobs)
	evalID := h.job("p1-build").EvalID
	ts := h.now()
	allocID := h.place("p1-build", "n1")

	a := h.alloc(allocID)
	if a.ClientStatus != structs.AllocClientPending || a.DesiredStatus != structs.AllocDesiredRun || !a.CreatedAt.Equal(ts) ||
		a.PipelineID != "p1" || a.Attempt != 1 || a.CreateIndex != h.index {
		t.Fatalf("alloc = %+v; want pending/run created at %v in pipeline p1", a, ts)
	}
	j := h.job("p1-build")
	if j.State != structs.JobScheduled || j.AllocID != allocID || j.NodeID != "n1" || j.EvalID != "" || j.Reason != "" ||
		j.Placement == nil || j.Placement.NodesEvaluated != 3 || j.ModifyIndex != h.index {
		t.Fatalf("job = %+v; want SCHEDULED on n1 with the plan's metrics", j)
	}
	if e := h.eval(evalID); e.Status != structs.EvalComplete || e.ModifyIndex != h.index {
		t.Fatalf("eval = %+v, want complete", e)
	}
	if got := h.pipeline("p1").State; got != structs.PipelineRunning {
		t.Fatalf("pipeline = %s, want RUNNING", got)
	}
}

func TestFSM_PlanApply_Stale(t *testing.T) {
	h := newHarness(t)
	h.addNode("n1")
	p, jobs := newPipeline("p1", jobSpec("build"), jobSpec("lint"), jobSpec("test", needs("build")))
	h.register(p, jobs)
	buildEval := h.job("p1-build").EvalID
	h.place("p1-build", "n1")
	lintEval := h.job("p1-lint").EvalID

	tests := []struct {
		name  string
		alloc *structs.Allocation
	}{
		{"job already scheduled", &structs.Allocation{ID: "x1", JobID: "p1-build", NodeID: "n1", EvalID: buildEval}},
		{"another evaluation", &structs.Allocation{ID: "x2", JobID: "p1-lint", NodeID: "n1", EvalID: "old-eval"}},
		{"job waiting for needs", &structs.Allocation{ID: "x3", JobID: "p1-test", NodeID: "n1"}},
		{"unknown job", &structs.Allocation{ID: "x4", JobID: "nope", NodeID: "n1", EvalID: lintEval}},
		{"alloc ID reused", &structs.Allocation{ID: "alloc-p1-build-1", JobID: "p1-lint", NodeID: "n1", EvalID: lintEval}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := persisted(t, h.f)
			got := h.must(structs.PlanApplyRequestType, &structs.PlanApplyRequest{WriteRequest: h.wr(), Allocs: []*structs.Allocation{tt.alloc}})
			if got != 0 {
				t.Fatalf("committed = %v, want 0", got)
			}
			if after := persisted(t, h.f); string(after) != string(before) {
				t.Fatalf("a stale plan changed the state")
			}
		})
	}
}

func TestFSM_PlanApply_Blocked(t *testing.T) {
	h := newHarness(t)
	p, jobs := newPipeline("p1", jobSpec("build"))
	h.register(p, jobs)
	e := h.eval(h.job("p1-build").EvalID).Copy()
	e.Status = structs.EvalBlocked
	e.StatusDescription = "no node has 250 cpu free (3 nodes exhausted on cpu)"
	metrics := &structs.PlacementMetrics{NodesEvaluated: 3, NodesExhausted: 3, ExhaustedBy: map[string]int{"cpu": 3}}
	got := h.must(structs.PlanApplyRequestType, &structs.PlanApplyRequest{WriteRequest: h.wr(),
		Evals: []*structs.Evaluation{e}, Metrics: map[string]*structs.PlacementMetrics{"p1-build": metrics}})
	if got != 0 {
		t.Fatalf("committed = %v, want 0", got)
	}
	stored := h.eval(e.ID)
	if stored.Status != structs.EvalBlocked || stored.CreateIndex != 1 || stored.ModifyIndex != h.index {
		t.Fatalf("eval = %+v; want blocked, created at 1, modified at %d", stored, h.index)
	}
	j := h.job("p1-build")
	if j.State != structs.JobPending || j.Reason != e.StatusDescription || j.Placement == nil || j.Placement.ExhaustedBy["cpu"] != 3 || j.EvalID != e.ID {
		t.Fatalf("job = %+v; want PENDING explaining the blocked eval", j)
	}

	// A re-queued evaluation with a new ID becomes the one the job waits on,
	// so its placement is not stale.
	requeued := &structs.Evaluation{ID: "requeued", JobID: "p1-build", PipelineID: "p1", Priority: 50,
		Status: structs.EvalPending, TriggeredBy: structs.TriggerPlanRejected}
	h.must(structs.PlanApplyRequestType, &structs.PlanApplyRequest{WriteRequest: h.wr(), Evals: []*structs.Evaluation{requeued}})
	if j := h.job("p1-build"); j.EvalID != "requeued" || j.Reason != "waiting to be placed" {
		t.Fatalf("job eval %q reason %q; want requeued, waiting to be placed", j.EvalID, j.Reason)
	}
	h.addNode("n1")
	h.place("p1-build", "n1")
}
