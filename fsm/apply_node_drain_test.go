package fsm

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/ciplat/ciplat/fsm/structs"
)

func (h *harness) node(id string) *structs.Node {
	h.t.Helper()
	n, err := h.f.State().NodeByID(nil, id)
	if err != nil || n == nil {
		h.t.Fatalf("node %s: %v, %v", id, n, err)
	}
	return n
}

func TestFSM_NodeDrain(t *testing.T) {
	h := newHarness(t)
	h.addNode("n1")
	deadline := h.now().Add(10 * time.Minute)

	if err := errOf(h.apply(structs.NodeDrainRequestType, &structs.NodeDrainRequest{WriteRequest: h.wr(), NodeID: "n1", Complete: true})); !errors.Is(err, structs.ErrConflict) {
		t.Fatalf("completing a node that is not draining: %v, want ErrConflict", err)
	}
	if err := errOf(h.apply(structs.NodeDrainRequestType, &structs.NodeDrainRequest{WriteRequest: h.wr(), NodeID: "nope", Enable: true})); !errors.Is(err, structs.ErrNotFound) {
		t.Fatalf("draining an unknown node: %v, want ErrNotFound", err)
	}

	h.must(structs.NodeDrainRequestType, &structs.NodeDrainRequest{WriteRequest: h.wr(), NodeID: "n1", Enable: true, Deadline: deadline})
	n := h.node("n1")
	if !n.Drain || !n.DrainDeadline.Equal(deadline) || n.Schedulable() {
		t.Fatalf("after drain: drain=%v deadline=%v schedulable=%v", n.Drain, n.DrainDeadline, n.Schedulable())
	}

	// An operator's end of the drain makes the node eligible again.
	h.must(structs.NodeDrainRequestType, &structs.NodeDrainRequest{WriteRequest: h.wr(), NodeID: "n1"})
	n = h.node("n1")
	if n.Drain || !n.DrainDeadline.IsZero() || !n.Eligible || !n.Schedulable() {
		t.Fatalf("after disable: %+v", n)
	}

	// The leader's completion leaves it ineligible.
	h.must(structs.NodeDrainRequestType, &structs.NodeDrainRequest{WriteRequest: h.wr(), NodeID: "n1", Enable: true})
	h.must(structs.NodeDrainRequestType, &structs.NodeDrainRequest{WriteRequest: h.wr(), NodeID: "n1", Complete: true})
	n = h.node("n1")
	if n.Drain || n.Eligible || n.Schedulable() {
		t.Fatalf("after completion: drain=%v eligible=%v", n.Drain, n.Eligible)
	}
}

func TestFSM_NodeEligibility(t *testing.T) {
	h := newHarness(t)
	h.addNode("n1")
	h.must(structs.NodeEligibilityRequestType, &structs.NodeEligibilityRequest{WriteRequest: h.wr(), NodeID: "n1", Eligible: false})
	if n := h.node("n1"); n.Eligible || n.Schedulable() {
		t.Fatalf("ineligible node: eligible=%v schedulable=%v", n.Eligible, n.Schedulable())
	}
	before := h.node("n1").ModifyIndex
	h.must(structs.NodeEligibilityRequestType, &structs.NodeEligibilityRequest{WriteRequest: h.wr(), NodeID: "n1", Eligible: false})
	if got := h.node("n1").ModifyIndex; got != before {
		t.Fatalf("a no-op eligibility change rewrote the node (modify %d → %d)", before, got)
	}
	h.must(structs.NodeEligibilityRequestType, &structs.NodeEligibilityRequest{WriteRequest: h.wr(), NodeID: "n1", Eligible: true})
	if !h.node("n1").Schedulable() {
		t.Fatal("eligible again: want schedulable")
	}
	if err := errOf(h.apply(structs.NodeEligibilityRequestType, &structs.NodeEligibilityRequest{WriteRequest: h.wr(), NodeID: "x"})); !errors.Is(err, structs.ErrNotFound) {
		t.Fatalf("unknown node: %v", err)
	}
}

// TestFSM_NodeDrainDeadline: past the deadline the node's running job is
// stopped and rescheduled at once, and the move does not use up a retry.
func TestFSM_NodeDrainDeadline(t *testing.T) {
	h := newHarness(t)
	h.addNode("n1")
	h.addNode("n2")
	p, jobs := newPipeline("p1", jobSpec("build", retry(1, time.Hour)), jobSpec("done"))
	h.register(p, jobs)
	build := h.place("p1-build", "n1")
	h.report(build, structs.AllocClientRunning, structs.JobRunning, "")
	done := h.place("p1-done", "n1")
	h.report(done, structs.AllocClientComplete, structs.JobSucceeded, "")

	deadline := h.now().Add(90 * time.Second) // between the next two entries
	h.must(structs.NodeDrainRequestType, &structs.NodeDrainRequest{WriteRequest: h.wr(), NodeID: "n1", Enable: true, Deadline: deadline})
	if err := errOf(h.apply(structs.NodeDrainDeadlineRequestType, &structs.NodeDrainDeadlineRequest{WriteRequest: h.wr(), NodeID: "n1"})); !errors.Is(err, structs.ErrConflict) {
		t.Fatalf("deadline entry before the deadline: %v, want ErrConflict", err)
	}
	h.must(structs.NodeDrainDeadlineRequestType, &structs.NodeDrainDeadlineRequest{WriteRequest: h.wr(), NodeID: "n1"})

	if a := h.alloc(build); a.DesiredStatus != structs.AllocDesiredStop || a.ClientStatus != structs.AllocClientRunning {
		t.Fatalf("drained allocation: desired %s client %s, want stop/running (the client stops it)", a.DesiredStatus, a.ClientStatus)
	}
	if a := h.alloc(done); a.DesiredStatus != structs.AllocDesiredRun {
		t.Fatalf("a finished allocation was touched: %+v", a)
	}
	j := h.job("p1-build")
	if j.State != structs.JobPending || j.Attempt != 2 || j.Rescheduled != 1 || j.AllocID != "" || !j.RetryAt.IsZero() {
		t.Fatalf("job = %s attempt %d rescheduled %d alloc %q retry at %v; want PENDING, attempt 2, rescheduled 1, no alloc, no wait",
			j.State, j.Attempt, j.Rescheduled, j.AllocID, j.RetryAt)
	}
	if len(j.History) != 1 || j.History[0].State != structs.JobTerminated || j.History[0].NodeID != "n1" {
		t.Fatalf("history = %+v, want one TERMINATED attempt on n1", j.History)
	}
	if e := h.eval(j.EvalID); e.TriggeredBy != structs.TriggerNodeDrain || !e.WaitUntil.IsZero() {
		t.Fatalf("eval = %+v, want a node-drain evaluation that does not wait", e)
	}

	// The drained node's client reports the stop; the job, placed on n2,
	// fails once and still has its one retry.
	h.report(build, structs.AllocClientComplete, "", "")
	if j := h.job("p1-build"); j.State != structs.JobPending {
		t.Fatalf("a stale report moved the job to %s", j.State)
	}
	second := h.place("p1-build", "n2")
	h.report(second, structs.AllocClientFailed, structs.JobFailed, "step compile exited 2")
	j = h.job("p1-build")
	if j.State != structs.JobPending || j.Attempt != 3 {
		t.Fatalf("after the first real failure: %s attempt %d, want PENDING attempt 3 (the retry)", j.State, j.Attempt)
	}
	third := h.place("p1-build", "n2")
	h.report(third, structs.AllocClientFailed, structs.JobFailed, "step compile exited 2")
	if j := h.job("p1-build"); j.State != structs.JobFailed {
		t.Fatalf("after the retry failed: %s, want FAILED", j.State)
	}

	// Replaying the log reaches the same state.
	r := newHarness(t)
	for _, l := range h.logs {
		r.f.Apply(l)
	}
	if !reflect.DeepEqual(persisted(t, h.f), persisted(t, r.f)) {
		t.Fatal("replaying the log gave another state")
	}
}

// TestFSM_LostAllocStaysLost: a client cut off while its node was declared
// down cannot bring the lost allocation back with a late report.
func TestFSM_LostAllocStaysLost(t *testing.T) {
	h := newHarness(t)
	h.addNode("n1")
	p, jobs := newPipeline("p1", jobSpec("build", retry(1, time.Hour)))
	h.register(p, jobs)
	a := h.place("p1-build", "n1")
	h.report(a, structs.AllocClientRunning, structs.JobRunning, "")
	h.must(structs.NodeStatusUpdateRequestType, &structs.NodeStatusUpdateRequest{WriteRequest: h.wr(), NodeID: "n1", Status: structs.NodeStatusDown})

	h.report(a, structs.AllocClientRunning, structs.JobRunning, "", structs.StepStatus{Name: "compile", State: structs.StepRunning})
	if got := h.alloc(a); got.ClientStatus != structs.AllocClientLost || got.Live() {
		t.Fatalf("late running report: alloc %s (live %v), want lost", got.ClientStatus, got.Live())
	}
	if j := h.job("p1-build"); j.State != structs.JobPending {
		t.Fatalf("job = %s, want PENDING (retried)", j.State)
	}
	h.report(a, structs.AllocClientComplete, "", "")
	if got := h.alloc(a); got.ClientStatus != structs.AllocClientComplete {
		t.Fatalf("final report: alloc %s, want complete", got.ClientStatus)
	}
}
