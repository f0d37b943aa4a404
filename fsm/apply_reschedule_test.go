package fsm

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/ciplat/ciplat/fsm/structs"
)

// faultCases end the current attempt of job p1-build (placed on n1 and
// RUNNING) by one infrastructure fault each; the job has no retry left
// (retry 0), so only the reschedule policy can place it again.
var faultCases = []struct {
	name, cause, reason string
	fault               func(h *harness, allocID string)
	delayed             bool // the reschedule waits its backoff
}{
	{"node down", structs.CauseNodeLost, "node name-n1 down", func(h *harness, _ string) {
		h.must(structs.NodeStatusUpdateRequestType, &structs.NodeStatusUpdateRequest{WriteRequest: h.wr(), NodeID: "n1", Status: structs.NodeStatusDown})
	}, true},
	{"worker creation failed", structs.CauseCreateFailed, "driver: create worker: boom", func(h *harness, allocID string) {
		h.reportCause(allocID, structs.CauseCreateFailed, "driver: create worker: boom")
	}, true},
	{"client lost the allocation", structs.CauseWorkerLost, "client restarted while the job ran", func(h *harness, allocID string) {
		h.reportCause(allocID, structs.CauseWorkerLost, "client restarted while the job ran")
	}, true},
}

// preemptFault preempts allocID (on n1) for the next PENDING high job; a
// preemption does not use up the reschedule policy, so it is not one of
// faultCases (TestFSM_PlanApply_PreemptionNotCounted).
func preemptFault(h *harness, allocID string) {
	h.t.Helper()
	high := h.pendingHigh()
	h.must(structs.PlanApplyRequestType, &structs.PlanApplyRequest{WriteRequest: h.wr(),
		Allocs: []*structs.Allocation{{ID: "a-high-" + allocID, JobID: high.ID, NodeID: "n1", EvalID: high.EvalID,
			Resources: high.Spec.Resources}},
		Preemptions: []*structs.Preemption{{AllocID: allocID, ByAllocID: "a-high-" + allocID, Reason: "preempted by high (priority 90)"}},
	})
}

// reportCause is a client reporting a FAILED attempt with a fault cause.
func (h *harness) reportCause(allocID, cause, reason string) {
	h.t.Helper()
	h.must(structs.AllocClientUpdateRequestType, &structs.AllocClientUpdateRequest{WriteRequest: h.wr(),
		Updates: []*structs.AllocUpdate{{AllocID: allocID, ClientStatus: structs.AllocClientFailed,
			JobState: structs.JobFailed, Reason: reason, Cause: cause}}})
}

// TestFSM_Reschedule_EachCause: each fault puts the job back to PENDING
// under its reschedule policy (2 attempts here, 10 s doubling up to 15 s),
// never using its retry budget (0), with the attempt recorded as a
// reschedule with its cause and node; the events say reschedule; once the
// policy is used up the next fault ends the job TERMINATED with a reason
// that says so, and its dependents are skipped.
func TestFSM_Reschedule_EachCause(t *testing.T) {
	for _, tc := range faultCases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.addNode("n1")
			h.addNode("n2")
			p, jobs := newPipeline("p1", jobSpec("build", prio(10), retry(0, 0), resched(2, 10*time.Second, 15*time.Second)),
				jobSpec("after", needs("build")), jobSpec("high1", prio(90)), jobSpec("high2", prio(90)), jobSpec("high3", prio(90)))
			h.register(p, jobs)

			wantDelays := []time.Duration{10 * time.Second, 15 * time.Second}
			for n := 1; n <= 2; n++ {
				a := h.place("p1-build", "n1")
				h.report(a, structs.AllocClientRunning, structs.JobRunning, "")
				mark := h.index
				ts := h.now()
				tc.fault(h, a)
				j := h.job("p1-build")
				if j.State != structs.JobPending || j.Attempt != n+1 || j.RescheduleAttempts != n || retriesUsed(j) != 0 {
					t.Fatalf("fault %d: job %s attempt %d reschedules %d retries used %d; want PENDING, attempt %d, %d reschedules, no retry used",
						n, j.State, j.Attempt, j.RescheduleAttempts, retriesUsed(j), n+1, n)
				}
				wantReason := "rescheduled (" + string(rune('0'+n)) + " of 2) after: " + tc.reason
				if j.Reason != wantReason {
					t.Fatalf("fault %d: reason %q, want %q", n, j.Reason, wantReason)
				}
				rec := j.History[len(j.History)-1]
				if rec.Kind != structs.AttemptReschedule || rec.Cause != tc.cause || rec.NodeID != "n1" || rec.AllocID != a ||
					rec.State != structs.JobTerminated || rec.Reason != tc.reason || !rec.FinishedAt.Equal(ts) {
					t.Fatalf("fault %d: history record %+v", n, rec)
				}
				wantAt := time.Time{}
				if tc.delayed {
					wantAt = ts.Add(wantDelays[n-1])
				}
				e := h.eval(j.EvalID)
				if !j.RetryAt.Equal(wantAt) || !e.WaitUntil.Equal(wantAt) {
					t.Fatalf("fault %d: retry at %v, eval waits until %v; want %v", n, j.RetryAt, e.WaitUntil, wantAt)
				}
				h.assertFaultEvents(mark, tc.cause)
				if tc.cause == structs.CauseNodeLost {
					h.addNode("n1") // the node comes back for the next round
				}
			}

			// The third fault finds no attempt left.
			a := h.place("p1-build", "n1")
			h.report(a, structs.AllocClientRunning, structs.JobRunning, "")
			tc.fault(h, a)
			j := h.job("p1-build")
			want := tc.reason + " (not rescheduled: all 2 reschedule attempts used)"
			if j.State != structs.JobTerminated || j.Reason != want || j.FinishedAt.IsZero() || len(j.History) != 3 ||
				j.History[2].Kind != "" || j.History[2].Cause != tc.cause {
				t.Fatalf("exhausted: job %s %q history %+v; want TERMINATED %q", j.State, j.Reason, j.History, want)
			}
			if d := h.job("p1-after"); d.State != structs.JobCancelled {
				t.Fatalf("dependent = %s, want skipped", d.State)
			}
			// Delays come from the entries' timestamps only: a replay of the
			// log ends in the same state, byte for byte.
			replay := newHarness(t)
			for _, l := range h.logs {
				replay.f.Apply(l)
			}
			if string(persisted(t, replay.f)) != string(persisted(t, h.f)) {
				t.Fatalf("replayed state differs")
			}
		})
	}
}

// assertFaultEvents checks the job events since mark: a non-final
// job.failed and a job.requested, both of kind reschedule with the cause.
func (h *harness) assertFaultEvents(mark uint64, cause string) {
	h.t.Helper()
	evs, err := h.f.State().EventsAfter(nil, mark, 1<<62, 1000)
	if err != nil {
		h.t.Fatal(err)
	}
	var got []string
	for _, e := range evs {
		if e.JobID != "p1-build" || !strings.HasPrefix(e.Topic, "domain.pipeline.job.") {
			continue
		}
		var p structs.JobEventPayload
		if err := json.Unmarshal(e.Payload, &p); err != nil {
			h.t.Fatal(err)
		}
		if p.Kind != structs.AttemptReschedule || p.Cause != cause {
			h.t.Fatalf("%s: kind %q cause %q, want reschedule %q", e.Topic, p.Kind, p.Cause, cause)
		}
		if e.Topic == structs.TopicJobFailed && (p.Final == nil || *p.Final) {
			h.t.Fatalf("job.failed of a rescheduled attempt says final")
		}
		got = append(got, e.Topic)
	}
	if len(got) != 2 || got[0] != structs.TopicJobFailed || got[1] != structs.TopicJobRequested {
		h.t.Fatalf("job events %v, want job.failed then job.requested", got)
	}
}

// pendingHigh returns a high-priority job still PENDING (one per
// preemption).
func (h *harness) pendingHigh() *structs.Job {
	h.t.Helper()
	for _, id := range []string{"p1-high1", "p1-high2", "p1-high3"} {
		if j := h.job(id); j.State == structs.JobPending {
			return j
		}
	}
	h.t.Fatal("no high job left to preempt with")
	return nil
}

// TestFSM_Reschedule_RetryStaysForStepFailures: a step failure after a
// reschedule uses the retry budget (and says retry), not the reschedule one.
func TestFSM_Reschedule_RetryStaysForStepFailures(t *testing.T) {
	h := newHarness(t)
	h.addNode("n1")
	h.addNode("n2")
	p, jobs := newPipeline("p1", jobSpec("build", retry(1, 7*time.Second), resched(1, time.Second, time.Minute)))
	h.register(p, jobs)
	a := h.place("p1-build", "n1")
	h.reportCause(a, structs.CauseWorkerLost, "client restarted while the job ran")
	a = h.place("p1-build", "n2")
	ts := h.now()
	mark := h.index
	h.report(a, structs.AllocClientFailed, structs.JobFailed, "step compile exited 2")
	for _, e := range h.jobEventsSince(mark, "p1-build") {
		if e.Kind != structs.AttemptRetry || e.Cause != "" {
			t.Fatalf("retry event %+v, want kind retry and no cause", e)
		}
	}
	j := h.job("p1-build")
	if j.State != structs.JobPending || j.RescheduleAttempts != 1 || retriesUsed(j) != 1 ||
		!j.RetryAt.Equal(ts.Add(7*time.Second)) || j.History[1].Kind != structs.AttemptRetry || j.History[1].Cause != "" {
		t.Fatalf("after a step failure: %+v", j)
	}
	if e := h.eval(j.EvalID); e.TriggeredBy != structs.TriggerRetry {
		t.Fatalf("eval trigger %s, want retry", e.TriggeredBy)
	}
	// The second step failure has no retry left: FAILED, not TERMINATED.
	a = h.place("p1-build", "n2")
	h.report(a, structs.AllocClientFailed, structs.JobFailed, "step compile exited 2")
	if j := h.job("p1-build"); j.State != structs.JobFailed || j.History[2].Kind != "" {
		t.Fatalf("final step failure: %s %+v", j.State, j.History)
	}
}

// TestFSM_Reschedule_DrainIsFree: a drain past its deadline reschedules at
// once and uses neither budget, even with a policy of 0.
func TestFSM_Reschedule_DrainIsFree(t *testing.T) {
	h := newHarness(t)
	h.addNode("n1")
	h.addNode("n2")
	p, jobs := newPipeline("p1", jobSpec("build", resched(0, 0, 0)))
	h.register(p, jobs)
	a := h.place("p1-build", "n1")
	h.report(a, structs.AllocClientRunning, structs.JobRunning, "")
	h.must(structs.NodeDrainRequestType, &structs.NodeDrainRequest{WriteRequest: h.wr(), NodeID: "n1", Enable: true, Deadline: h.now()})
	h.must(structs.NodeDrainDeadlineRequestType, &structs.NodeDrainDeadlineRequest{WriteRequest: h.wr(), NodeID: "n1"})
	j := h.job("p1-build")
	if j.State != structs.JobPending || j.RescheduleAttempts != 0 || j.Rescheduled != 1 || !j.RetryAt.IsZero() ||
		j.History[0].Cause != structs.CauseDrained || j.History[0].Kind != structs.AttemptReschedule {
		t.Fatalf("drained job: %+v", j)
	}
}

// TestFSM_Reschedule_DefaultPolicy: a job stored without a reschedule
// block (as before the field existed) gets 3 attempts, 5 s → 1 m.
func TestFSM_Reschedule_DefaultPolicy(t *testing.T) {
	h := newHarness(t)
	h.addNode("n1")
	p, jobs := newPipeline("p1", jobSpec("build"))
	h.register(p, jobs)
	for n, want := range []time.Duration{5 * time.Second, 10 * time.Second, 20 * time.Second} {
		a := h.place("p1-build", "n1")
		ts := h.now()
		h.reportCause(a, structs.CauseCreateFailed, "driver: create worker: no space")
		if j := h.job("p1-build"); j.State != structs.JobPending || !j.RetryAt.Equal(ts.Add(want)) {
			t.Fatalf("reschedule %d: %s at %v, want PENDING at +%s", n+1, j.State, j.RetryAt, want)
		}
	}
	a := h.place("p1-build", "n1")
	h.reportCause(a, structs.CauseCreateFailed, "driver: create worker: no space")
	if j := h.job("p1-build"); j.State != structs.JobTerminated {
		t.Fatalf("after 4 faults: %s, want TERMINATED", j.State)
	}
}

// TestFSM_Reschedule_BadCauseRefused: a cause a client may not report, or
// one on a report that is not FAILED, is refused by Apply with an error and
// changes nothing.
func TestFSM_Reschedule_BadCauseRefused(t *testing.T) {
	h := newHarness(t)
	h.addNode("n1")
	p, jobs := newPipeline("p1", jobSpec("build"))
	h.register(p, jobs)
	a := h.place("p1-build", "n1")
	for _, u := range []*structs.AllocUpdate{
		{AllocID: a, ClientStatus: structs.AllocClientFailed, JobState: structs.JobFailed, Cause: structs.CauseNodeLost},
		{AllocID: a, ClientStatus: structs.AllocClientFailed, JobState: structs.JobFailed, Cause: "gremlins"},
		{AllocID: a, ClientStatus: structs.AllocClientRunning, JobState: structs.JobRunning, Cause: structs.CauseWorkerLost},
	} {
		before := persisted(t, h.f)
		err := errOf(h.apply(structs.AllocClientUpdateRequestType, &structs.AllocClientUpdateRequest{WriteRequest: h.wr(),
			Updates: []*structs.AllocUpdate{u}}))
		if err == nil || !strings.Contains(err.Error(), "cause") {
			t.Fatalf("cause %q with %s: Apply = %v, want an error naming the cause", u.Cause, u.JobState, err)
		}
		if string(persisted(t, h.f)) != string(before) {
			t.Fatalf("a refused entry changed the state")
		}
	}
}

func TestReschedulePolicy_DelayFor(t *testing.T) {
	p := structs.DefaultReschedulePolicy()
	for n, want := range map[int]time.Duration{1: 5 * time.Second, 2: 10 * time.Second, 3: 20 * time.Second,
		4: 40 * time.Second, 5: time.Minute, 60: time.Minute, 1000: time.Minute} {
		if got := p.DelayFor(n); got != want {
			t.Errorf("DelayFor(%d) = %s, want %s", n, got, want)
		}
	}
	huge := structs.ReschedulePolicy{Delay: structs.Duration(time.Hour)}
	if got := huge.DelayFor(200); got <= 0 {
		t.Errorf("uncapped DelayFor(200) = %s, want saturated, not overflowed", got)
	}
	if got := (structs.ReschedulePolicy{Delay: -1}).DelayFor(3); got != 0 {
		t.Errorf("negative delay gives %s, want 0", got)
	}
}

// jobEventsSince returns the payloads of the job's job.failed and
// job.requested events after mark.
func (h *harness) jobEventsSince(mark uint64, jobID string) []structs.JobEventPayload {
	h.t.Helper()
	evs, err := h.f.State().EventsAfter(nil, mark, 1<<62, 1000)
	if err != nil {
		h.t.Fatal(err)
	}
	var out []structs.JobEventPayload
	for _, e := range evs {
		if e.JobID != jobID || (e.Topic != structs.TopicJobFailed && e.Topic != structs.TopicJobRequested) {
			continue
		}
		var p structs.JobEventPayload
		if err := json.Unmarshal(e.Payload, &p); err != nil {
			h.t.Fatal(err)
		}
		out = append(out, p)
	}
	if len(out) != 2 {
		h.t.Fatalf("%d job events, want job.failed and job.requested", len(out))
	}
	return out
}
