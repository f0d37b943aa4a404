package fsm

import (
	"strings"
	"testing"
	"time"

	"github.com/ciplat/ciplat/fsm/structs"
)

func TestFSM_AllocClientUpdate_RunAndSucceed(t *testing.T) {
	h := newHarness(t)
	h.addNode("n1")
	p, jobs := newPipeline("p1", jobSpec("build"), jobSpec("lint"), jobSpec("test", needs("build", "lint")))
	h.register(p, jobs)
	build := h.place("p1-build", "n1")

	started := h.now()
	h.report(build, structs.AllocClientRunning, structs.JobRunning, "",
		structs.StepStatus{Name: "compile", State: structs.StepRunning, StartedAt: started})
	j := h.job("p1-build")
	if j.State != structs.JobRunning || !j.StartedAt.Equal(started) || j.Steps[0].State != structs.StepRunning || j.Steps[1].State != structs.StepPending {
		t.Fatalf("job = %s started %v steps %+v; want RUNNING since %v, compile running", j.State, j.StartedAt, j.Steps, started)
	}
	if a := h.alloc(build); a.ClientStatus != structs.AllocClientRunning {
		t.Fatalf("alloc client status = %s, want running", a.ClientStatus)
	}

	// A step update alone merges by name; unknown step names are ignored.
	exit0 := 0
	h.report(build, "", "", "",
		structs.StepStatus{Name: "compile", State: structs.StepSucceeded, ExitCode: &exit0},
		structs.StepStatus{Name: "ghost", State: structs.StepFailed})
	if j := h.job("p1-build"); j.Steps[0].State != structs.StepSucceeded || len(j.Steps) != 2 || j.State != structs.JobRunning {
		t.Fatalf("steps = %+v state %s; want compile SUCCEEDED, two steps, RUNNING", j.Steps, j.State)
	}

	finished := h.now()
	h.report(build, structs.AllocClientComplete, structs.JobSucceeded, "")
	j = h.job("p1-build")
	if j.State != structs.JobSucceeded || !j.FinishedAt.Equal(finished) || len(j.History) != 1 {
		t.Fatalf("job = %s finished %v history %d; want SUCCEEDED at %v with one attempt", j.State, j.FinishedAt, len(j.History), finished)
	}
	want := structs.AttemptRecord{Attempt: 1, AllocID: build, NodeID: "n1", State: structs.JobSucceeded, StartedAt: started, FinishedAt: finished}
	if j.History[0] != want {
		t.Fatalf("attempt = %+v\nwant %+v", j.History[0], want)
	}
	if j := h.job("p1-test"); j.EvalID != "" {
		t.Fatalf("test got eval %s while lint has not succeeded", j.EvalID)
	}

	// lint succeeds straight from SCHEDULED: test's needs are all met.
	h.report(h.place("p1-lint", "n1"), structs.AllocClientComplete, structs.JobSucceeded, "")
	if j := h.job("p1-lint"); j.State != structs.JobSucceeded || j.StartedAt.IsZero() {
		t.Fatalf("lint = %s started %v, want SUCCEEDED with a start time", j.State, j.StartedAt)
	}
	test := h.job("p1-test")
	if test.EvalID != structs.EvalID(h.index, "p1-test") || test.Reason != "waiting to be placed" {
		t.Fatalf("test eval %q reason %q; want a needs-met eval at index %d", test.EvalID, test.Reason, h.index)
	}
	if e := h.eval(test.EvalID); e.TriggeredBy != structs.TriggerNeedsMet || e.Status != structs.EvalPending {
		t.Fatalf("test eval = %+v, want pending needs-met", e)
	}
	if got := h.pipeline("p1").State; got != structs.PipelineRunning {
		t.Fatalf("pipeline = %s, want RUNNING", got)
	}
	h.report(h.place("p1-test", "n1"), structs.AllocClientComplete, structs.JobSucceeded, "")
	if got := h.pipeline("p1"); got.State != structs.PipelineSucceeded || !got.FinishedAt.Equal(h.now().Add(-time.Minute)) {
		t.Fatalf("pipeline = %s finished %v, want SUCCEEDED at the last entry", got.State, got.FinishedAt)
	}
}

func TestFSM_AllocClientUpdate_RetryThenFail(t *testing.T) {
	h := newHarness(t)
	h.addNode("n1")
	p, jobs := newPipeline("p1", jobSpec("build", retry(2, 10*time.Second)), jobSpec("test", needs("build")),
		jobSpec("deploy", needs("test")), jobSpec("lint"))
	h.register(p, jobs)

	// Attempt 1 fails while RUNNING: first retry waits the backoff.
	first := h.place("p1-build", "n1")
	h.report(first, structs.AllocClientRunning, structs.JobRunning, "")
	ts := h.now()
	h.report(first, structs.AllocClientFailed, structs.JobFailed, "step compile exited 2")
	j := h.job("p1-build")
	if j.State != structs.JobPending || j.Attempt != 2 || j.AllocID != "" || !j.RetryAt.Equal(ts.Add(10*time.Second)) ||
		j.Reason != "retry 1 of 2 after: step compile exited 2" {
		t.Fatalf("after attempt 1: %s attempt %d alloc %q retry at %v reason %q", j.State, j.Attempt, j.AllocID, j.RetryAt, j.Reason)
	}
	e := h.eval(j.EvalID)
	if e.ID != structs.EvalID(h.index, "p1-build") || e.TriggeredBy != structs.TriggerRetry || !e.WaitUntil.Equal(j.RetryAt) || e.Status != structs.EvalPending {
		t.Fatalf("retry eval = %+v; want pending retry waiting until %v", e, j.RetryAt)
	}
	if len(j.History) != 1 || j.History[0].State != structs.JobFailed || j.History[0].Reason != "step compile exited 2" || j.History[0].AllocID != first {
		t.Fatalf("history = %+v, want attempt 1 FAILED", j.History)
	}

	// Attempt 2 fails: the second retry waits twice the backoff.
	second := h.place("p1-build", "n1")
	if a := h.alloc(second); a.Attempt != 2 {
		t.Fatalf("second alloc attempt = %d, want 2", a.Attempt)
	}
	h.report(second, structs.AllocClientRunning, structs.JobRunning, "")
	ts = h.now()
	h.report(second, structs.AllocClientFailed, structs.JobFailed, "step check exited 1")
	j = h.job("p1-build")
	if j.Attempt != 3 || !j.RetryAt.Equal(ts.Add(20*time.Second)) || j.Reason != "retry 2 of 2 after: step check exited 1" {
		t.Fatalf("after attempt 2: attempt %d retry at %v reason %q", j.Attempt, j.RetryAt, j.Reason)
	}

	// A late report from the first allocation only changes that allocation.
	h.report(first, structs.AllocClientComplete, structs.JobSucceeded, "")
	if j := h.job("p1-build"); j.State != structs.JobPending || j.Attempt != 3 {
		t.Fatalf("a stale allocation moved the job to %s", j.State)
	}
	if a := h.alloc(first); a.ClientStatus != structs.AllocClientComplete {
		t.Fatalf("stale alloc status = %s, want complete", a.ClientStatus)
	}

	// Attempt 3 fails straight from SCHEDULED: no retry left.
	third := h.place("p1-build", "n1")
	ts = h.now()
	h.report(third, structs.AllocClientFailed, structs.JobFailed, "step compile exited 2")
	j = h.job("p1-build")
	if j.State != structs.JobFailed || !j.FinishedAt.Equal(ts) || j.Reason != "step compile exited 2" || len(j.History) != 3 || j.EvalID != "" {
		t.Fatalf("after attempt 3: %s finished %v reason %q history %d eval %q", j.State, j.FinishedAt, j.Reason, len(j.History), j.EvalID)
	}

	tests := []struct {
		job    string
		state  structs.JobState
		reason string
	}{
		{"p1-test", structs.JobCancelled, "skipped: needs build which FAILED"},
		{"p1-deploy", structs.JobCancelled, "skipped: needs test which CANCELLED"},
		{"p1-lint", structs.JobPending, "waiting to be placed"},
	}
	for _, tt := range tests {
		if j := h.job(tt.job); j.State != tt.state || j.Reason != tt.reason {
			t.Errorf("%s = %s %q, want %s %q", tt.job, j.State, j.Reason, tt.state, tt.reason)
		}
	}
	if got := h.pipeline("p1").State; got != structs.PipelineRunning {
		t.Fatalf("pipeline with lint pending = %s, want RUNNING", got)
	}
	h.report(h.place("p1-lint", "n1"), structs.AllocClientComplete, structs.JobSucceeded, "")
	if got := h.pipeline("p1"); got.State != structs.PipelineFailed || got.FinishedAt.IsZero() {
		t.Fatalf("pipeline = %s finished %v, want FAILED with a finish time", got.State, got.FinishedAt)
	}
}

func TestFSM_AllocClientUpdate_Ignored(t *testing.T) {
	h := newHarness(t)
	h.addNode("n1")
	p, jobs := newPipeline("p1", jobSpec("build"))
	h.register(p, jobs)
	alloc := h.place("p1-build", "n1")

	before := persisted(t, h.f)
	h.report("no-such-alloc", structs.AllocClientRunning, structs.JobRunning, "")
	if after := persisted(t, h.f); string(after) != string(before) {
		t.Fatalf("an update for an unknown allocation changed the state")
	}

	err := errOf(h.apply(structs.AllocClientUpdateRequestType, &structs.AllocClientUpdateRequest{WriteRequest: h.wr(),
		Updates: []*structs.AllocUpdate{{AllocID: alloc, JobState: structs.JobCancelled}}}))
	if err == nil || !strings.Contains(err.Error(), `job_state: "CANCELLED" is not one a client may report`) {
		t.Fatalf("Apply = %v, want a refused job state", err)
	}
}
