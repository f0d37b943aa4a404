package fsm

import (
	"errors"
	"testing"
	"time"

	"github.com/ciplat/ciplat/fsm/structs"
)

func TestFSM_NodeRegister(t *testing.T) {
	h := newHarness(t)
	ts := h.now()
	h.addNode("n1")
	n, _ := h.f.State().NodeByID(nil, "n1")
	if n == nil || n.CreateIndex != 1 || n.ModifyIndex != 1 || !n.StatusUpdatedAt.Equal(ts) {
		t.Fatalf("node = %+v; want created at 1, status updated at %v", n, ts)
	}
	upd := n.Copy()
	upd.Resources.CPU = 8000
	h.must(structs.NodeRegisterRequestType, &structs.NodeRegisterRequest{WriteRequest: h.wr(), Node: upd})
	n, _ = h.f.State().NodeByID(nil, "n1")
	if n.CreateIndex != 1 || n.ModifyIndex != 2 || n.Resources.CPU != 8000 {
		t.Fatalf("re-registered node = %+v; want create 1, modify 2, 8000 cpu", n)
	}
	if err := errOf(h.apply(structs.NodeRegisterRequestType, &structs.NodeRegisterRequest{WriteRequest: h.wr()})); err == nil {
		t.Fatalf("register without a node: want an error")
	}
}

func TestFSM_NodeStatusUpdate(t *testing.T) {
	h := newHarness(t)
	tests := []struct {
		name, node, status string
		notFound           bool
	}{
		{"unknown node", "nope", structs.NodeStatusDown, true},
		{"bad status", "n1", "sleepy", false},
	}
	h.addNode("n1")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := errOf(h.apply(structs.NodeStatusUpdateRequestType,
				&structs.NodeStatusUpdateRequest{WriteRequest: h.wr(), NodeID: tt.node, Status: tt.status}))
			if err == nil || errors.Is(err, structs.ErrNotFound) != tt.notFound {
				t.Fatalf("Apply = %v, want an error (not found: %v)", err, tt.notFound)
			}
		})
	}
}

func TestFSM_NodeStatusUpdate_Down(t *testing.T) {
	h := newHarness(t)
	h.addNode("n1")
	h.addNode("n2")
	p, jobs := newPipeline("p1", jobSpec("build", retry(1, 30*time.Second)), jobSpec("lint", resched(0, 0, 0)),
		jobSpec("report", needs("lint")), jobSpec("elsewhere"), jobSpec("done"))
	h.register(p, jobs)
	build := h.place("p1-build", "n1")
	h.report(build, structs.AllocClientRunning, structs.JobRunning, "")
	lint := h.place("p1-lint", "n1")
	elsewhere := h.place("p1-elsewhere", "n2")
	done := h.place("p1-done", "n1")
	h.report(done, structs.AllocClientComplete, structs.JobSucceeded, "")

	ts := h.now()
	h.must(structs.NodeStatusUpdateRequestType, &structs.NodeStatusUpdateRequest{WriteRequest: h.wr(), NodeID: "n1", Status: structs.NodeStatusDown})

	n, _ := h.f.State().NodeByID(nil, "n1")
	if n.Status != structs.NodeStatusDown || !n.StatusUpdatedAt.Equal(ts) {
		t.Fatalf("node = %s at %v, want down at %v", n.Status, n.StatusUpdatedAt, ts)
	}
	allocs := []struct {
		id, status string
	}{
		{build, structs.AllocClientLost},
		{lint, structs.AllocClientLost},
		{elsewhere, structs.AllocClientPending},
		{done, structs.AllocClientComplete},
	}
	for _, a := range allocs {
		if got := h.alloc(a.id).ClientStatus; got != a.status {
			t.Errorf("alloc %s = %s, want %s", a.id, got, a.status)
		}
	}

	// build is rescheduled under the default policy (3 attempts, 5 s
	// first): TERMINATED → PENDING with a delayed eval; its retry is
	// still unused.
	j := h.job("p1-build")
	if j.State != structs.JobPending || j.Attempt != 2 || j.Reason != "rescheduled (1 of 3) after: node name-n1 down" ||
		!j.RetryAt.Equal(ts.Add(5*time.Second)) || len(j.History) != 1 || j.History[0].State != structs.JobTerminated ||
		j.History[0].Kind != structs.AttemptReschedule || j.History[0].Cause != structs.CauseNodeLost ||
		j.History[0].NodeID != "n1" || j.RescheduleAttempts != 1 || retriesUsed(j) != 0 {
		t.Fatalf("build = %s attempt %d reason %q retry %v history %+v", j.State, j.Attempt, j.Reason, j.RetryAt, j.History)
	}
	if e := h.eval(j.EvalID); e.TriggeredBy != structs.TriggerReschedule || !e.WaitUntil.Equal(j.RetryAt) {
		t.Fatalf("build eval = %+v, want a reschedule eval", e)
	}
	// lint's policy allows no reschedule: it stays TERMINATED and report is skipped.
	j = h.job("p1-lint")
	if j.State != structs.JobTerminated || j.Reason != "node name-n1 down (the job's reschedule policy allows no reschedule)" ||
		!j.FinishedAt.Equal(ts) || len(j.History) != 1 {
		t.Fatalf("lint = %s reason %q finished %v history %d", j.State, j.Reason, j.FinishedAt, len(j.History))
	}
	if j := h.job("p1-report"); j.State != structs.JobCancelled || j.Reason != "skipped: needs lint which TERMINATED" {
		t.Fatalf("report = %s %q, want skipped", j.State, j.Reason)
	}
	if j := h.job("p1-elsewhere"); j.State != structs.JobScheduled {
		t.Fatalf("job on another node = %s, want SCHEDULED", j.State)
	}

	// The retry is placed elsewhere and succeeds.
	h.report(h.place("p1-build", "n2"), structs.AllocClientComplete, structs.JobSucceeded, "")
	if j := h.job("p1-build"); j.State != structs.JobSucceeded || len(j.History) != 2 {
		t.Fatalf("build = %s with %d attempts, want SUCCEEDED after 2", j.State, len(j.History))
	}
}
