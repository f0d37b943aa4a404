package fsm

import (
	"bytes"
	"io"
	"testing"
	"time"

	"github.com/ciplat/ciplat/fsm/structs"
)

// rulesScenario feeds h the entries whose meaning changed in issue 12: a
// node lost under a running job, a preemption, and an Idempotency-Key
// registered without expiry, then a sweep two days later.
func rulesScenario(h *harness) {
	h.t.Helper()
	h.addNode("n1")
	h.addNode("n2")
	p, jobs := newPipeline("p1", jobSpec("lost", retry(1, 30*time.Second)), jobSpec("low", prio(10)), jobSpec("high", prio(90)))
	h.register(p, jobs)
	lost := h.place("p1-lost", "n1")
	h.report(lost, structs.AllocClientRunning, structs.JobRunning, "")
	low := h.place("p1-low", "n2")
	h.report(low, structs.AllocClientRunning, structs.JobRunning, "")
	high := h.job("p1-high")
	h.must(structs.PlanApplyRequestType, &structs.PlanApplyRequest{WriteRequest: h.wr(),
		Allocs:      []*structs.Allocation{{ID: "a-high", JobID: "p1-high", NodeID: "n2", EvalID: high.EvalID, Resources: high.Spec.Resources}},
		Preemptions: []*structs.Preemption{{AllocID: low, ByAllocID: "a-high"}},
	})
	h.must(structs.NodeStatusUpdateRequestType, &structs.NodeStatusUpdateRequest{WriteRequest: h.wr(), NodeID: "n1", Status: structs.NodeStatusDown})
	p2, jobs2 := newPipeline("p2", jobSpec("build"))
	h.must(structs.PipelineRegisterRequestType, &structs.PipelineRegisterRequest{WriteRequest: h.wr(),
		Pipeline: p2, Jobs: jobs2, IdempotencyKey: "k"})
	h.must(structs.IdempotencyKeySweepRequestType, &structs.IdempotencyKeySweepRequest{
		WriteRequest: structs.WriteRequest{Timestamp: h.now(), Rules: structs.CurrentRules}, Cutoff: h.now().Add(48 * time.Hour)})
}

// replayed is the state of a fresh FSM fed h's log.
func replayed(t *testing.T, h *harness) []byte {
	t.Helper()
	r := newHarness(t)
	for _, l := range h.logs {
		if resp, ok := r.f.Apply(l).(error); ok {
			t.Fatalf("replay %d: %v", l.Index, resp)
		}
	}
	return persisted(t, r.f)
}

// TestFSM_ApplyRules: an entry without Rules (written before issue 12) is
// applied with the old rules — a lost node's job is retried, a preemption
// is a plain eviction, a key without expiry never expires — and one with
// CurrentRules with the new ones; replaying either log gives the same
// bytes.
func TestFSM_ApplyRules(t *testing.T) {
	old := newHarness(t)
	old.legacy = true
	rulesScenario(old)
	cur := newHarness(t)
	rulesScenario(cur)

	if j := old.job("p1-lost"); j.State != structs.JobPending || len(j.History) != 1 ||
		j.History[0].Kind != structs.AttemptRetry || j.History[0].Cause != "" || j.RescheduleAttempts != 0 || retriesUsed(j) != 1 {
		t.Errorf("old rules, lost node's job = %s, history %+v, reschedules %d; want PENDING on its retry", j.State, j.History, j.RescheduleAttempts)
	}
	if j := cur.job("p1-lost"); j.State != structs.JobPending || len(j.History) != 1 ||
		j.History[0].Kind != structs.AttemptReschedule || j.History[0].Cause != structs.CauseNodeLost || j.RescheduleAttempts != 1 || retriesUsed(j) != 0 {
		t.Errorf("new rules, lost node's job = %s, history %+v, reschedules %d; want PENDING, rescheduled", j.State, j.History, j.RescheduleAttempts)
	}
	if j := old.job("p1-low"); j.State != structs.JobPending || len(j.History) != 1 || j.History[0].Kind != "" ||
		j.History[0].Cause != "" || j.Reason != j.History[0].Reason || j.Rescheduled != 1 || j.RescheduleAttempts != 0 {
		t.Errorf("old rules, preempted job = %+v; want PENDING, a plain eviction", j)
	}
	if j := cur.job("p1-low"); j.State != structs.JobPending || len(j.History) != 1 ||
		j.History[0].Kind != structs.AttemptReschedule || j.History[0].Cause != structs.CausePreempted {
		t.Errorf("new rules, preempted job = %+v; want PENDING, rescheduled (cause preempted)", j)
	}
	if k, _ := old.f.State().IdempotencyKey(nil, "", "k"); k == nil || !k.ExpiresAt.Equal(structs.IdempotencyNeverExpires) ||
		k.Expired(structs.IdempotencyNeverExpires.Add(-time.Hour)) {
		t.Errorf("old rules, key without expiry = %+v; want kept, never expiring", k)
	}
	if k, _ := cur.f.State().IdempotencyKey(nil, "", "k"); k != nil {
		t.Errorf("new rules, key without expiry = %+v; want expired after a day and swept", k)
	}

	for _, h := range []*harness{old, cur} {
		if a, b := persisted(t, h.f), replayed(t, h); !bytes.Equal(a, b) {
			t.Errorf("legacy=%v: replaying the log gives other bytes (%d vs %d)", h.legacy, len(a), len(b))
		}
	}
	// A never-expiring key survives a snapshot and restore.
	snap := persisted(t, old.f)
	restored, err := New(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := restored.Restore(io.NopCloser(bytes.NewReader(snap))); err != nil {
		t.Fatalf("restore a snapshot holding a never-expiring key: %v", err)
	}
	if k, _ := restored.State().IdempotencyKey(nil, "", "k"); k == nil || !k.ExpiresAt.Equal(structs.IdempotencyNeverExpires) {
		t.Errorf("restored key = %+v, want never expiring", k)
	}
	if bytes.Equal(persisted(t, old.f), persisted(t, cur.f)) {
		t.Error("old and new rules gave the same state; the scenario tests nothing")
	}
}
