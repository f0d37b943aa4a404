package fsm

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/ciplat/ciplat/fsm/state"
	"github.com/ciplat/ciplat/fsm/structs"
)

func (h *harness) reportWorker(u *structs.AllocUpdate) {
	h.t.Helper()
	h.must(structs.AllocClientUpdateRequestType, &structs.AllocClientUpdateRequest{WriteRequest: h.wr(), Updates: []*structs.AllocUpdate{u}})
}

func (h *harness) stopWorker(allocID string) {
	h.t.Helper()
	h.must(structs.WorkerStopRequestType, &structs.WorkerStopRequest{WriteRequest: h.wr(), AllocID: allocID, Reason: "worker terminated by operator"})
}

func TestFSM_Worker_FieldsStoredAndEvents(t *testing.T) {
	h := newHarness(t)
	h.addNode("n1")
	p, jobs := newPipeline("p1", jobSpec("build"))
	h.register(p, jobs)
	a1 := h.place("p1-build", "n1")
	if got := h.alloc(a1).WorkerState(); got != structs.WorkerCreating {
		t.Fatalf("worker state before any report = %q, want creating", got)
	}
	mark := h.index
	started := h.now()
	h.reportWorker(&structs.AllocUpdate{AllocID: a1, ClientStatus: structs.AllocClientRunning, JobState: structs.JobRunning,
		Driver: "docker", WorkerID: "c0ffee", Image: "busybox:1", WorkerState: structs.WorkerRunning})
	w := h.alloc(a1).Worker
	want := structs.WorkerInfo{Driver: "docker", HandleID: "c0ffee", Image: "busybox:1", State: structs.WorkerRunning, StartedAt: started}
	if w == nil || *w != want {
		t.Fatalf("worker = %+v, want %+v", w, want)
	}
	evs, err := h.f.State().EventsAfter(nil, mark, 1<<64-1, 0)
	if err != nil || len(evs) == 0 || evs[0].Topic != structs.TopicWorkerCreated {
		t.Fatalf("events = %v, %v; want worker.created first", evs, err)
	}
	var pl structs.WorkerEventPayload
	if err := json.Unmarshal(evs[0].Payload, &pl); err != nil || pl.Driver != "docker" || pl.WorkerID != "c0ffee" || pl.Image != "busybox:1" {
		t.Fatalf("worker.created payload = %+v (%v), want driver, worker id and image", pl, err)
	}

	// The end: terminated, with its time; a late running report does not revive it.
	mark = h.index
	ended := h.now()
	h.reportWorker(&structs.AllocUpdate{AllocID: a1, ClientStatus: structs.AllocClientComplete, JobState: structs.JobSucceeded,
		Driver: "docker", WorkerID: "c0ffee", WorkerState: structs.WorkerTerminated})
	eq(t, "end", h.eventsSince(mark), "provider.worker.terminated "+a1, "pipeline.job.completed p1-build")
	h.reportWorker(&structs.AllocUpdate{AllocID: a1, WorkerState: structs.WorkerRunning})
	w = h.alloc(a1).Worker
	if w.State != structs.WorkerTerminated || !w.EndedAt.Equal(ended) || !w.StartedAt.Equal(started) {
		t.Fatalf("worker = %+v, want terminated at %v", w, ended)
	}
	// An unknown worker state is ignored.
	h.reportWorker(&structs.AllocUpdate{AllocID: a1, WorkerState: "exploded"})
	if h.alloc(a1).Worker.State != structs.WorkerTerminated {
		t.Fatal("an unknown worker state was stored")
	}
}

func TestFSM_Worker_CreateFailed(t *testing.T) {
	h := newHarness(t)
	h.addNode("n1")
	p, jobs := newPipeline("p1", jobSpec("build"))
	h.register(p, jobs)
	a1 := h.place("p1-build", "n1")
	mark := h.index
	h.must(structs.AllocClientUpdateRequestType, &structs.AllocClientUpdateRequest{WriteRequest: h.wr(), Updates: []*structs.AllocUpdate{
		{AllocID: a1, ClientStatus: structs.AllocClientRunning, JobState: structs.JobRunning, Driver: "docker", Image: "nope"},
		{AllocID: a1, ClientStatus: structs.AllocClientFailed, JobState: structs.JobFailed, Reason: "driver: create worker: no image",
			Driver: "docker", Image: "nope", WorkerState: structs.WorkerFailed},
	}})
	w := h.alloc(a1).Worker
	if w == nil || w.State != structs.WorkerFailed || w.Reason != "driver: create worker: no image" || w.Driver != "docker" || w.HandleID != "" {
		t.Fatalf("worker = %+v, want failed with the reason", w)
	}
	got := h.eventsSince(mark)
	if len(got) < 2 || got[0] != "provider.worker.created "+a1 || !strings.Contains(strings.Join(got, "\n"), "provider.worker.failed "+a1) {
		t.Fatalf("events = %v, want worker.created then worker.failed", got)
	}
}

func TestFSM_WorkerStop_RetriesThenFails(t *testing.T) {
	h := newHarness(t)
	h.addNode("n1")
	p, jobs := newPipeline("p1", jobSpec("build", retry(1, time.Second)), jobSpec("test", needs("build")))
	h.register(p, jobs)
	a1 := h.place("p1-build", "n1")
	h.report(a1, structs.AllocClientRunning, structs.JobRunning, "")

	h.stopWorker(a1)
	a := h.alloc(a1)
	if a.DesiredStatus != structs.AllocDesiredStop || a.Worker == nil || !a.Worker.StopRequested || a.Worker.Reason != "worker terminated by operator" {
		t.Fatalf("alloc = %+v worker %+v; want desired stop, stop requested with the reason", a, a.Worker)
	}
	j := h.job("p1-build")
	if j.State != structs.JobPending || j.Attempt != 2 || len(j.History) != 1 ||
		j.History[0].State != structs.JobTerminated || j.History[0].Reason != "worker terminated by operator" {
		t.Fatalf("job = %s attempt %d history %+v; want PENDING for attempt 2 after a TERMINATED attempt", j.State, j.Attempt, j.History)
	}
	if !strings.Contains(j.Reason, "worker terminated by operator") {
		t.Fatalf("job reason = %q", j.Reason)
	}
	// Idempotent: a second stop changes nothing.
	before := h.index
	idx := h.f.State().Index(state.TableAllocs)
	h.stopWorker(a1)
	if h.f.State().Index(state.TableAllocs) != idx || len(h.eventsSince(before)) != 0 {
		t.Fatal("a second stop changed state or emitted events")
	}
	// The client reports the worker gone: worker.terminated.
	mark := h.index
	h.reportWorker(&structs.AllocUpdate{AllocID: a1, ClientStatus: structs.AllocClientComplete, Driver: "exec", WorkerID: a1, WorkerState: structs.WorkerTerminated})
	eq(t, "stopped worker gone", h.eventsSince(mark), "provider.worker.terminated "+a1)
	if h.alloc(a1).Live() {
		t.Fatal("stopped allocation still live")
	}

	// The retry's worker is stopped too: no retry left, the job fails for good.
	h.must(structs.EvalUpdateRequestType, &structs.EvalUpdateRequest{WriteRequest: h.wr()}) // tick
	a2 := h.place("p1-build", "n1")
	h.report(a2, structs.AllocClientRunning, structs.JobRunning, "")
	h.stopWorker(a2)
	j = h.job("p1-build")
	if j.State != structs.JobTerminated || j.Reason != "worker terminated by operator" || j.FinishedAt.IsZero() {
		t.Fatalf("job = %s reason %q; want TERMINATED for good with the reason", j.State, j.Reason)
	}
	if tj := h.job("p1-test"); tj.State != structs.JobCancelled {
		t.Fatalf("dependent = %s, want CANCELLED (skipped)", tj.State)
	}
	// Unknown allocation: nothing happens.
	h.stopWorker("nope")
}
