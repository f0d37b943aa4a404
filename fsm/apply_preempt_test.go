package fsm

import (
	"testing"

	"github.com/ciplat/ciplat/fsm/structs"
)

func prio(p int) func(*structs.JobSpec) { return func(s *structs.JobSpec) { s.Priority = p } }

// TestFSM_PlanApply_Preemption commits a high-priority placement that
// evicts a running low-priority allocation: the victim stops counting,
// its job is PENDING again with the reason, without using a retry.
func TestFSM_PlanApply_Preemption(t *testing.T) {
	h := newHarness(t)
	h.addNode("n1")
	p, jobs := newPipeline("p1", jobSpec("low", prio(10), retry(0, 0)), jobSpec("high", prio(90)))
	h.register(p, jobs)
	lowAlloc := h.place("p1-low", "n1")
	h.report(lowAlloc, structs.AllocClientRunning, structs.JobRunning, "")

	high := h.job("p1-high")
	req := &structs.PlanApplyRequest{WriteRequest: h.wr(),
		Allocs:      []*structs.Allocation{{ID: "a-high", JobID: "p1-high", NodeID: "n1", EvalID: high.EvalID, Resources: high.Spec.Resources}},
		Preemptions: []*structs.Preemption{{AllocID: lowAlloc, ByAllocID: "a-high", Reason: "preempted by high (priority 90)"}},
	}
	if got := h.must(structs.PlanApplyRequestType, req); got != 1 {
		t.Fatalf("committed %v, want 1", got)
	}
	victim := h.alloc(lowAlloc)
	if victim.DesiredStatus != structs.AllocDesiredStop || victim.PreemptedBy != "a-high" || victim.Live() {
		t.Fatalf("victim alloc = %+v; want desired stop, preempted by a-high, not live", victim)
	}
	low := h.job("p1-low")
	if low.State != structs.JobPending || low.Reason != "rescheduled after: preempted by high (priority 90)" ||
		low.Attempt != 2 || low.Rescheduled != 1 || low.RescheduleAttempts != 0 || low.AllocID != "" || low.EvalID == "" ||
		!low.RetryAt.IsZero() {
		t.Fatalf("low job = %+v; want PENDING, preempted, attempt 2, rescheduled 1, a new evaluation", low)
	}
	if e := h.eval(low.EvalID); e.Status != structs.EvalPending || e.TriggeredBy != structs.TriggerPreempted || e.Priority != 10 {
		t.Fatalf("low's evaluation = %+v; want pending, triggered by preemption", e)
	}
	if n := len(low.History); n != 1 || low.History[0].State != structs.JobTerminated ||
		low.History[0].Reason != "preempted by high (priority 90)" || low.History[0].Kind != structs.AttemptReschedule ||
		low.History[0].Cause != structs.CausePreempted {
		t.Fatalf("low's history = %+v; want one TERMINATED attempt with the reason", low.History)
	}
	// Being preempted did not use up a retry: this is still the job's
	// first counted attempt.
	if low.Attempt-low.Rescheduled != 1 {
		t.Fatalf("preemption used up the retry budget: attempt %d, rescheduled %d", low.Attempt, low.Rescheduled)
	}
	if j := h.job("p1-high"); j.State != structs.JobScheduled || j.AllocID != "a-high" {
		t.Fatalf("high job = %+v; want SCHEDULED on a-high", j)
	}
}

// TestFSM_PlanApply_PreemptionNotCounted: a preemption does not use up
// the reschedule policy (as in Nomad), so a job whose policy allows no
// reschedule is still placed again, however often it is preempted.
func TestFSM_PlanApply_PreemptionNotCounted(t *testing.T) {
	h := newHarness(t)
	h.addNode("n1")
	p, jobs := newPipeline("p1", jobSpec("low", prio(10), retry(0, 0), resched(0, 0, 0)),
		jobSpec("high1", prio(90)), jobSpec("high2", prio(90)), jobSpec("high3", prio(90)))
	h.register(p, jobs)
	for i := range 3 {
		lowAlloc := h.place("p1-low", "n1")
		h.report(lowAlloc, structs.AllocClientRunning, structs.JobRunning, "")
		preemptFault(h, lowAlloc)
		low := h.job("p1-low")
		if low.State != structs.JobPending || low.RescheduleAttempts != 0 || low.Rescheduled != i+1 || retriesUsed(low) != 0 ||
			low.Reason != "rescheduled after: preempted by high (priority 90)" || !low.RetryAt.IsZero() {
			t.Fatalf("after preemption %d: low = %s, reason %q, reschedule attempts %d, rescheduled %d; want PENDING, none used",
				i+1, low.State, low.Reason, low.RescheduleAttempts, low.Rescheduled)
		}
	}
}

// TestFSM_PlanApply_PreemptionSkipped: an eviction applies only with its
// committed placement, and never to an equal or higher priority job.
func TestFSM_PlanApply_PreemptionSkipped(t *testing.T) {
	h := newHarness(t)
	h.addNode("n1")
	p, jobs := newPipeline("p1", jobSpec("a", prio(50)), jobSpec("b", prio(50)), jobSpec("c", prio(90)))
	h.register(p, jobs)
	aAlloc := h.place("p1-a", "n1")

	tests := []struct {
		name string
		req  func() *structs.PlanApplyRequest
	}{
		{"stale placement", func() *structs.PlanApplyRequest {
			return &structs.PlanApplyRequest{WriteRequest: h.wr(),
				Allocs:      []*structs.Allocation{{ID: "x", JobID: "p1-c", NodeID: "n1", EvalID: "old"}},
				Preemptions: []*structs.Preemption{{AllocID: aAlloc, ByAllocID: "x"}}}
		}},
		{"equal priority", func() *structs.PlanApplyRequest {
			b := h.job("p1-b")
			return &structs.PlanApplyRequest{WriteRequest: h.wr(),
				Allocs:      []*structs.Allocation{{ID: "y", JobID: "p1-b", NodeID: "n1", EvalID: b.EvalID}},
				Preemptions: []*structs.Preemption{{AllocID: aAlloc, ByAllocID: "y"}}}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h.must(structs.PlanApplyRequestType, tt.req())
			if a := h.alloc(aAlloc); a.PreemptedBy != "" || !a.Live() {
				t.Fatalf("alloc a was evicted: %+v", a)
			}
			if j := h.job("p1-a"); j.State != structs.JobScheduled {
				t.Fatalf("job a = %s, want SCHEDULED", j.State)
			}
		})
	}
}
