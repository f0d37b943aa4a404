package fsm

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ciplat/ciplat/fsm/structs"
)

// eventsSince returns "<index> <topic> <key>" for every event after index,
// with the topic's domain. prefix cut, and marks the read position.
func (h *harness) eventsSince(after uint64) []string {
	h.t.Helper()
	evs, err := h.f.State().EventsAfter(nil, after, 1<<64-1, 0)
	if err != nil {
		h.t.Fatalf("EventsAfter: %v", err)
	}
	out := []string{}
	for _, e := range evs {
		if e.Index <= after || !e.Time.Equal(t0.Add(timeOf(e.Index))) {
			h.t.Fatalf("event %s at index %d has time %v: want the entry's timestamp", e.ID(), e.Index, e.Time)
		}
		out = append(out, fmt.Sprintf("%s %s", strings.TrimPrefix(e.Topic, "domain."), e.Key))
	}
	return out
}

func eq(t *testing.T, step string, got []string, want ...string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("%s: events\n  %s\nwant\n  %s", step, strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

func TestFSM_Events_PipelineLifecycle(t *testing.T) {
	h := newHarness(t)
	h.addNode("n1")
	eq(t, "node register", h.eventsSince(0), "scheduler.capacity.updated n1")
	h.addNode("n1") // the same record again: nothing changed, no event
	eq(t, "node re-register", h.eventsSince(1))

	p, jobs := newPipeline("p1", jobSpec("build", retry(1, 0)), jobSpec("test", needs("build")))
	mark := h.index
	h.register(p, jobs)
	eq(t, "register", h.eventsSince(mark), "pipeline.job.requested p1-build", "pipeline.job.requested p1-test")

	mark = h.index
	a1 := h.place("p1-build", "n1")
	eq(t, "plan", h.eventsSince(mark), "scheduler.offer.created p1-build", "scheduler.assignment.created p1-build")

	mark = h.index
	h.report(a1, structs.AllocClientRunning, structs.JobRunning, "",
		structs.StepStatus{Name: "compile", State: structs.StepRunning, StartedAt: h.now()})
	eq(t, "running", h.eventsSince(mark),
		"provider.worker.created "+a1, "pipeline.job.started p1-build", "pipeline.step.started p1-build")

	mark = h.index
	exit1 := 1
	h.report(a1, structs.AllocClientFailed, structs.JobFailed, "compile: exit 1",
		structs.StepStatus{Name: "compile", State: structs.StepFailed, ExitCode: &exit1, StartedAt: t0, FinishedAt: h.now()})
	eq(t, "attempt fails, retried", h.eventsSince(mark),
		"provider.worker.failed "+a1, "pipeline.step.failed p1-build",
		"pipeline.job.failed p1-build", "pipeline.job.requested p1-build")
	evs, _ := h.f.State().EventsAfter(nil, mark, 1<<64-1, 0)
	var failed structs.JobEventPayload
	if err := json.Unmarshal(evs[2].Payload, &failed); err != nil || failed.Final == nil || *failed.Final || failed.State != structs.JobFailed {
		t.Fatalf("job.failed payload = %s (%v): want final=false, state FAILED", evs[2].Payload, err)
	}
	var again structs.JobEventPayload
	if err := json.Unmarshal(evs[3].Payload, &again); err != nil || again.Trigger != structs.TriggerRetry || again.Attempt != 2 {
		t.Fatalf("job.requested payload = %s: want trigger retry, attempt 2", evs[3].Payload)
	}

	// Second attempt: steps jump from PENDING to SUCCEEDED in one report.
	a2 := h.place("p1-build", "n1")
	mark = h.index
	exit0 := 0
	h.report(a2, structs.AllocClientComplete, structs.JobSucceeded, "",
		structs.StepStatus{Name: "compile", State: structs.StepSucceeded, ExitCode: &exit0, StartedAt: t0, FinishedAt: t0},
		structs.StepStatus{Name: "check", State: structs.StepSucceeded, ExitCode: &exit0, StartedAt: t0, FinishedAt: t0})
	eq(t, "succeeds at once", h.eventsSince(mark),
		"provider.worker.created "+a2, "provider.worker.terminated "+a2,
		"pipeline.job.started p1-build",
		"pipeline.step.started p1-build", "pipeline.step.completed p1-build",
		"pipeline.step.started p1-build", "pipeline.step.completed p1-build",
		"pipeline.job.completed p1-build")

	a3 := h.place("p1-test", "n1")
	h.report(a3, structs.AllocClientRunning, structs.JobRunning, "")
	mark = h.index
	h.must(structs.PipelineCancelRequestType, &structs.PipelineCancelRequest{WriteRequest: h.wr(), PipelineID: "p1"})
	eq(t, "cancel", h.eventsSince(mark), "pipeline.job.cancelled p1-test")
	mark = h.index
	h.report(a3, structs.AllocClientComplete, "", "")
	eq(t, "worker stopped", h.eventsSince(mark), "provider.worker.terminated "+a3)
}

func TestFSM_Events_NodeDown(t *testing.T) {
	h := newHarness(t)
	h.addNode("n1")
	p, jobs := newPipeline("p1", jobSpec("build", resched(0, 0, 0)), jobSpec("test", needs("build")))
	h.register(p, jobs)
	a1 := h.place("p1-build", "n1")
	h.report(a1, structs.AllocClientRunning, structs.JobRunning, "")
	mark := h.index
	h.must(structs.NodeStatusUpdateRequestType, &structs.NodeStatusUpdateRequest{WriteRequest: h.wr(), NodeID: "n1", Status: structs.NodeStatusDown})
	eq(t, "node down", h.eventsSince(mark),
		"scheduler.capacity.updated n1", "provider.worker.failed "+a1,
		"pipeline.job.failed p1-build", "pipeline.job.cancelled p1-test")
}

// TestFSM_Events_Deterministic replays a log on a second FSM: the events
// table is part of the state, so it must come out byte for byte the same.
func TestFSM_Events_Deterministic(t *testing.T) {
	h := newHarness(t)
	h.addNode("n1")
	p, jobs := newPipeline("p1", jobSpec("build"), jobSpec("test", needs("build")))
	h.register(p, jobs)
	a := h.place("p1-build", "n1")
	h.report(a, structs.AllocClientComplete, structs.JobSucceeded, "")
	replay := newHarness(t)
	for _, l := range h.logs {
		replay.f.Apply(l)
	}
	if got, want := string(persisted(t, replay.f)), string(persisted(t, h.f)); got != want {
		t.Fatalf("replayed state differs")
	}
	if n := h.f.State().EventCount(); n < 6 {
		t.Fatalf("EventCount = %d, want the lifecycle's events", n)
	}
}

// timeOf is the offset from t0 of the harness's entry at index.
func timeOf(index uint64) time.Duration { return time.Duration(index) * time.Minute }
