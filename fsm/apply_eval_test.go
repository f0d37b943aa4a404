package fsm

import (
	"testing"

	"github.com/ciplat/ciplat/fsm/structs"
)

func TestFSM_EvalUpdate(t *testing.T) {
	h := newHarness(t)
	e := &structs.Evaluation{ID: "e1", JobID: "j1", PipelineID: "p1", Priority: 50, Status: structs.EvalPending, TriggeredBy: structs.TriggerJobRegister}
	h.must(structs.EvalUpdateRequestType, &structs.EvalUpdateRequest{WriteRequest: h.wr(), Evals: []*structs.Evaluation{e}})
	failed := *e
	failed.Status = structs.EvalFailed
	failed.StatusDescription = "scheduler gave up after 3 tries"
	h.must(structs.EvalUpdateRequestType, &structs.EvalUpdateRequest{WriteRequest: h.wr(), Evals: []*structs.Evaluation{&failed}})

	got := h.eval("e1")
	if got.Status != structs.EvalFailed || got.StatusDescription != failed.StatusDescription || got.CreateIndex != 1 || got.ModifyIndex != 2 {
		t.Fatalf("eval = %+v; want failed, created 1, modified 2", got)
	}
	if err := errOf(h.apply(structs.EvalUpdateRequestType, &structs.EvalUpdateRequest{WriteRequest: h.wr(),
		Evals: []*structs.Evaluation{{ID: "no-status"}}})); err == nil {
		t.Fatalf("an evaluation without status: want an error")
	}
}

// TestFSM_EvalUpdate_FailedFollowUp: when the evaluation a PENDING job
// waits on fails, the job's reason says why; the follow-up evaluation
// becomes the one it waits on, its WaitUntil the job's RetryAt.
func TestFSM_EvalUpdate_FailedFollowUp(t *testing.T) {
	h := newHarness(t)
	p, jobs := newPipeline("p1", jobSpec("build"))
	h.register(p, jobs)
	first := h.job("p1-build").EvalID

	failed := h.eval(first).Copy()
	failed.Status = structs.EvalFailed
	failed.StatusDescription = "evaluation failed after 5 deliveries: plan conflict"
	follow := &structs.Evaluation{ID: "follow", JobID: "p1-build", PipelineID: "p1", Priority: 50,
		Status: structs.EvalPending, TriggeredBy: structs.TriggerFailedFollowUp, PreviousEval: first, WaitUntil: h.now().Add(60e9)}
	h.must(structs.EvalUpdateRequestType, &structs.EvalUpdateRequest{WriteRequest: h.wr(), Evals: []*structs.Evaluation{failed, follow}})

	j := h.job("p1-build")
	if j.State != structs.JobPending || j.Reason != failed.StatusDescription || j.EvalID != "follow" || !j.RetryAt.Equal(follow.WaitUntil) {
		t.Fatalf("job = %+v; want PENDING, the failure as reason, waiting on the follow-up until %v", j, follow.WaitUntil)
	}
	if e := h.eval(first); e.Status != structs.EvalFailed {
		t.Fatalf("first evaluation = %s, want failed", e.Status)
	}

	// An update of an evaluation the job no longer waits on leaves the job alone.
	stale := h.eval(first).Copy()
	stale.StatusDescription = "something else"
	h.must(structs.EvalUpdateRequestType, &structs.EvalUpdateRequest{WriteRequest: h.wr(), Evals: []*structs.Evaluation{stale}})
	if got := h.job("p1-build"); got.Reason != failed.StatusDescription || got.EvalID != "follow" {
		t.Fatalf("a stale evaluation changed the job: %+v", got)
	}
}
