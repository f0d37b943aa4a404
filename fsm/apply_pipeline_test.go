package fsm

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ciplat/ciplat/fsm/state"
	"github.com/ciplat/ciplat/fsm/structs"
)

func TestFSM_PipelineRegister(t *testing.T) {
	h := newHarness(t)
	p, jobs := newPipeline("p1", jobSpec("build"), jobSpec("test", needs("build", "lint")), jobSpec("lint"))
	ts := h.now()
	resp := h.register(p, jobs)
	if resp.PipelineID != "p1" || resp.Existing || resp.Index != 1 {
		t.Fatalf("response = %+v, want p1, new, index 1", resp)
	}

	got := h.pipeline("p1")
	if got.State != structs.PipelinePending || !got.SubmittedAt.Equal(ts) || got.CreateIndex != 1 || got.ModifyIndex != 1 {
		t.Fatalf("pipeline = %+v; want PENDING submitted at %v, indexes 1", got, ts)
	}
	if want := []string{"p1-build", "p1-test", "p1-lint"}; !slices.Equal(got.JobIDs, want) {
		t.Fatalf("JobIDs = %v, want %v", got.JobIDs, want)
	}

	tests := []struct {
		job, reason string
		eval        bool
	}{
		{"p1-build", "waiting to be placed", true},
		{"p1-test", "waiting for needs: build, lint", false},
		{"p1-lint", "waiting to be placed", true},
	}
	for _, tt := range tests {
		t.Run(tt.job, func(t *testing.T) {
			j := h.job(tt.job)
			if j.State != structs.JobPending || j.Attempt != 1 || !j.CreatedAt.Equal(ts) || j.Reason != tt.reason || j.CreateIndex != 1 {
				t.Fatalf("job = %+v; want PENDING attempt 1 created at %v, reason %q", j, ts, tt.reason)
			}
			if len(j.Steps) != 2 || j.Steps[0] != (structs.StepStatus{Name: "compile", State: structs.StepPending}) ||
				j.Steps[1] != (structs.StepStatus{Name: "check", State: structs.StepPending}) {
				t.Fatalf("steps = %+v, want compile and check PENDING", j.Steps)
			}
			if !tt.eval {
				if j.EvalID != "" {
					t.Fatalf("job waiting for needs has eval %s", j.EvalID)
				}
				return
			}
			wantID := structs.EvalID(1, tt.job)
			if j.EvalID != wantID {
				t.Fatalf("EvalID = %q, want %q", j.EvalID, wantID)
			}
			e := h.eval(wantID)
			want := structs.Evaluation{ID: wantID, JobID: tt.job, PipelineID: "p1", Priority: 50, Status: structs.EvalPending,
				TriggeredBy: structs.TriggerJobRegister, CreateIndex: 1, ModifyIndex: 1}
			if *e != want {
				t.Fatalf("eval = %+v\nwant %+v", *e, want)
			}
		})
	}
	s := h.f.State()
	for _, table := range []string{state.TablePipelines, state.TableJobs, state.TableEvals} {
		if got := s.Index(table); got != 1 {
			t.Errorf("Index(%s) = %d, want 1", table, got)
		}
	}
}

func TestFSM_PipelineRegister_Existing(t *testing.T) {
	h := newHarness(t)
	p, jobs := newPipeline("p1", jobSpec("build"))
	h.must(structs.PipelineRegisterRequestType, &structs.PipelineRegisterRequest{WriteRequest: h.wr(), Pipeline: p, Jobs: jobs, IdempotencyKey: "key-1"})
	if got := h.pipeline("p1").IdempotencyKey; got != "key-1" {
		t.Fatalf("IdempotencyKey = %q, want key-1", got)
	}
	before := persisted(t, h.f)

	tests := []struct {
		name string
		id   string
		key  string
	}{
		{"same key, new ID", "p2", "key-1"},
		{"same ID, no key", "p1", ""},
		{"same ID, new key", "p1", "key-2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, jobs := newPipeline(tt.id, jobSpec("build"))
			resp := h.must(structs.PipelineRegisterRequestType,
				&structs.PipelineRegisterRequest{WriteRequest: h.wr(), Pipeline: p, Jobs: jobs, IdempotencyKey: tt.key})
			r := resp.(*structs.PipelineRegisterResponse)
			if r.PipelineID != "p1" || !r.Existing || r.Index != h.index {
				t.Fatalf("response = %+v, want existing p1 at index %d", r, h.index)
			}
			if after := persisted(t, h.f); string(after) != string(before) {
				t.Fatalf("an existing register changed the state")
			}
		})
	}
}

func TestFSM_PipelineRegister_Invalid(t *testing.T) {
	h := newHarness(t)
	p, jobs := newPipeline("taken", jobSpec("build"))
	h.register(p, jobs)
	before := persisted(t, h.f)

	tests := []struct {
		name string
		req  func() *structs.PipelineRegisterRequest
		want string
	}{
		{"no pipeline", func() *structs.PipelineRegisterRequest { return &structs.PipelineRegisterRequest{} }, "pipeline: missing"},
		{"no jobs", func() *structs.PipelineRegisterRequest {
			p, _ := newPipeline("p1")
			return &structs.PipelineRegisterRequest{Pipeline: p}
		}, "has no jobs"},
		{"job of another pipeline", func() *structs.PipelineRegisterRequest {
			p, jobs := newPipeline("p1", jobSpec("build"))
			jobs[0].PipelineID = "p9"
			return &structs.PipelineRegisterRequest{Pipeline: p, Jobs: jobs}
		}, "belongs to pipeline p9"},
		{"unknown need", func() *structs.PipelineRegisterRequest {
			p, jobs := newPipeline("p1", jobSpec("build", needs("nope")))
			return &structs.PipelineRegisterRequest{Pipeline: p, Jobs: jobs}
		}, `needs "nope"`},
		{"duplicate job name", func() *structs.PipelineRegisterRequest {
			p, jobs := newPipeline("p1", jobSpec("build"), jobSpec("build"))
			jobs[1].ID = "other"
			return &structs.PipelineRegisterRequest{Pipeline: p, Jobs: jobs}
		}, `job name "build" is given twice`},
		{"job ID of another pipeline", func() *structs.PipelineRegisterRequest {
			p, jobs := newPipeline("p1", jobSpec("build"))
			jobs[0].ID = "taken-build"
			return &structs.PipelineRegisterRequest{Pipeline: p, Jobs: jobs}
		}, "already belongs to pipeline taken"},
		{"job IDs differ", func() *structs.PipelineRegisterRequest {
			p, jobs := newPipeline("p1", jobSpec("build"))
			p.JobIDs = []string{"x"}
			return &structs.PipelineRegisterRequest{Pipeline: p, Jobs: jobs}
		}, "do not match"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := tt.req()
			req.WriteRequest = h.wr()
			err := errOf(h.apply(structs.PipelineRegisterRequestType, req))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Apply = %v, want an error containing %q", err, tt.want)
			}
			if after := persisted(t, h.f); string(after) != string(before) {
				t.Fatalf("a refused register changed the state")
			}
		})
	}
}

func TestFSM_PipelineCancel(t *testing.T) {
	h := newHarness(t)
	h.addNode("n1")
	p, jobs := newPipeline("p1", jobSpec("build"), jobSpec("lint"), jobSpec("test", needs("build")), jobSpec("done"))
	h.register(p, jobs)
	buildAlloc := h.place("p1-build", "n1")
	h.report(buildAlloc, structs.AllocClientRunning, structs.JobRunning, "")
	doneAlloc := h.place("p1-done", "n1")
	h.report(doneAlloc, structs.AllocClientComplete, structs.JobSucceeded, "")
	lintEval := h.job("p1-lint").EvalID

	if err := errOf(h.apply(structs.PipelineCancelRequestType,
		&structs.PipelineCancelRequest{WriteRequest: h.wr(), PipelineID: "nope"})); !errors.Is(err, structs.ErrNotFound) {
		t.Fatalf("cancel of an unknown pipeline = %v, want ErrNotFound", err)
	}

	ts := h.now()
	h.must(structs.PipelineCancelRequestType, &structs.PipelineCancelRequest{WriteRequest: h.wr(), PipelineID: "p1"})

	for _, id := range []string{"p1-build", "p1-lint", "p1-test"} {
		j := h.job(id)
		if j.State != structs.JobCancelled || j.Reason != "cancelled by user" || !j.FinishedAt.Equal(ts) || j.EvalID != "" {
			t.Errorf("job %s = %s %q finished %v eval %q; want CANCELLED by user at %v", id, j.State, j.Reason, j.FinishedAt, j.EvalID, ts)
		}
	}
	if j := h.job("p1-done"); j.State != structs.JobSucceeded {
		t.Errorf("finished job changed to %s", j.State)
	}
	if hist := h.job("p1-build").History; len(hist) != 1 || hist[0].State != structs.JobCancelled {
		t.Errorf("build history = %+v, want one CANCELLED attempt", hist)
	}
	if e := h.eval(lintEval); e.Status != structs.EvalCancelled {
		t.Errorf("lint eval = %s, want cancelled", e.Status)
	}
	if a := h.alloc(buildAlloc); a.DesiredStatus != structs.AllocDesiredStop {
		t.Errorf("build alloc desired = %s, want stop", a.DesiredStatus)
	}
	if a := h.alloc(doneAlloc); a.DesiredStatus != structs.AllocDesiredRun {
		t.Errorf("finished alloc desired = %s, want run (it is not live)", a.DesiredStatus)
	}
	got := h.pipeline("p1")
	if got.State != structs.PipelineCancelled || !got.CancelRequested || !got.FinishedAt.Equal(ts) {
		t.Fatalf("pipeline = %s cancel=%v finished %v; want CANCELLED, requested, at %v", got.State, got.CancelRequested, got.FinishedAt, ts)
	}

	err := errOf(h.apply(structs.PipelineCancelRequestType, &structs.PipelineCancelRequest{WriteRequest: h.wr(), PipelineID: "p1"}))
	if !errors.Is(err, structs.ErrConflict) || !strings.Contains(err.Error(), "pipeline already CANCELLED") {
		t.Fatalf("second cancel = %v, want ErrConflict: pipeline already CANCELLED", err)
	}
}

func TestFSM_PipelineCancel_Finished(t *testing.T) {
	h := newHarness(t)
	h.addNode("n1")
	p, jobs := newPipeline("p1", jobSpec("build"))
	h.register(p, jobs)
	h.report(h.place("p1-build", "n1"), structs.AllocClientComplete, structs.JobSucceeded, "")
	if got := h.pipeline("p1").State; got != structs.PipelineSucceeded {
		t.Fatalf("pipeline = %s, want SUCCEEDED", got)
	}
	err := errOf(h.apply(structs.PipelineCancelRequestType,
		&structs.PipelineCancelRequest{WriteRequest: h.wr(), PipelineID: "p1", Reason: "too late"}))
	if !errors.Is(err, structs.ErrConflict) || !strings.Contains(err.Error(), "pipeline already SUCCEEDED") {
		t.Fatalf("cancel = %v, want ErrConflict: pipeline already SUCCEEDED", err)
	}
}

func TestFSM_PipelineCancel_Reason(t *testing.T) {
	h := newHarness(t)
	p, jobs := newPipeline("p1", jobSpec("build"))
	h.register(p, jobs)
	h.must(structs.PipelineCancelRequestType, &structs.PipelineCancelRequest{WriteRequest: h.wr(), PipelineID: "p1", Reason: "superseded by #42"})
	if j := h.job("p1-build"); j.Reason != "superseded by #42" || j.FinishedAt.Equal(time.Time{}) {
		t.Fatalf("job reason %q finished %v; want the request's reason and a finish time", j.Reason, j.FinishedAt)
	}
}

// TestFSM_PipelineRegister_ResetsRuntimeCounters: a register entry cannot
// hand a job reschedule attempts (a negative count would allow unlimited
// reschedules) or retries: every counter starts afresh.
func TestFSM_PipelineRegister_ResetsRuntimeCounters(t *testing.T) {
	h := newHarness(t)
	p, jobs := newPipeline("p1", jobSpec("build"))
	jobs[0].RescheduleAttempts = -1000000
	jobs[0].Rescheduled = -5
	jobs[0].Attempt = -7
	h.register(p, jobs)
	if j := h.job("p1-build"); j.RescheduleAttempts != 0 || j.Rescheduled != 0 || j.Attempt != 1 {
		t.Fatalf("registered job: reschedule attempts %d, rescheduled %d, attempt %d; want 0, 0, 1",
			j.RescheduleAttempts, j.Rescheduled, j.Attempt)
	}
}
