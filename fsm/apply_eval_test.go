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
