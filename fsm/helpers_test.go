package fsm

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/ciplat/ciplat/fsm/structs"
)

var t0 = time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)

// harness applies entries to an FSM the way raft does, at increasing
// indexes and timestamps (one minute apart), and keeps the log so it can be
// replayed.
type harness struct {
	t     *testing.T
	f     *FSM
	index uint64
	logs  []*raft.Log
	// legacy makes wr write entries without Rules, as a server before
	// issue 12 did.
	legacy bool
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	f, err := New(nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return &harness{t: t, f: f}
}

// now is the timestamp the next entry carries.
func (h *harness) now() time.Time { return t0.Add(time.Duration(h.index+1) * time.Minute) }

// apply appends one entry and returns Apply's response.
func (h *harness) apply(mt structs.MessageType, req any) any {
	h.t.Helper()
	data, err := structs.Encode(mt, req)
	if err != nil {
		h.t.Fatalf("Encode: %v", err)
	}
	h.index++
	l := &raft.Log{Index: h.index, Term: 1, Type: raft.LogCommand, Data: data}
	h.logs = append(h.logs, l)
	return h.f.Apply(l)
}

// must applies an entry that must not be refused.
func (h *harness) must(mt structs.MessageType, req any) any {
	h.t.Helper()
	resp := h.apply(mt, req)
	if err, ok := resp.(error); ok {
		h.t.Fatalf("apply %s: %v", mt, err)
	}
	return resp
}

// wr is the WriteRequest of an entry this version proposes (CurrentRules),
// or, for a legacy harness, one an older server wrote (no Rules).
func (h *harness) wr() structs.WriteRequest {
	if h.legacy {
		return structs.WriteRequest{Timestamp: h.now()}
	}
	return structs.WriteRequest{Timestamp: h.now(), Rules: structs.CurrentRules}
}

func (h *harness) register(p *structs.Pipeline, jobs []*structs.Job) *structs.PipelineRegisterResponse {
	h.t.Helper()
	return h.must(structs.PipelineRegisterRequestType,
		&structs.PipelineRegisterRequest{WriteRequest: h.wr(), Pipeline: p, Jobs: jobs}).(*structs.PipelineRegisterResponse)
}

// place commits a placement of the job on the node through a plan and
// returns the new allocation's ID.
func (h *harness) place(jobID, nodeID string) string {
	h.t.Helper()
	j := h.job(jobID)
	allocID := fmt.Sprintf("alloc-%s-%d", jobID, j.Attempt)
	req := &structs.PlanApplyRequest{WriteRequest: h.wr(),
		Allocs:  []*structs.Allocation{{ID: allocID, JobID: jobID, NodeID: nodeID, EvalID: j.EvalID, Resources: j.Spec.Resources, Score: 0.5}},
		Metrics: map[string]*structs.PlacementMetrics{jobID: {NodesEvaluated: 3, TopOffers: []structs.Offer{{NodeID: nodeID, Score: 0.5}}}},
	}
	if got := h.must(structs.PlanApplyRequestType, req); got != 1 {
		h.t.Fatalf("plan for %s committed %v allocations, want 1", jobID, got)
	}
	return allocID
}

// report sends one client update.
func (h *harness) report(allocID, clientStatus string, js structs.JobState, reason string, steps ...structs.StepStatus) {
	h.t.Helper()
	h.must(structs.AllocClientUpdateRequestType, &structs.AllocClientUpdateRequest{WriteRequest: h.wr(),
		Updates: []*structs.AllocUpdate{{AllocID: allocID, ClientStatus: clientStatus, JobState: js, Reason: reason, Steps: steps}}})
}

func (h *harness) addNode(id string) {
	h.t.Helper()
	h.must(structs.NodeRegisterRequestType, &structs.NodeRegisterRequest{WriteRequest: h.wr(), Node: &structs.Node{
		ID: id, Name: "name-" + id, Status: structs.NodeStatusReady, Eligible: true,
		Resources: structs.Resources{CPU: 4000, MemoryMB: 4096}, Attributes: map[string]string{"os": "linux"},
	}})
}

func (h *harness) job(id string) *structs.Job {
	h.t.Helper()
	j, err := h.f.State().JobByID(nil, id)
	if err != nil || j == nil {
		h.t.Fatalf("job %s: %v, %v", id, j, err)
	}
	return j
}

func (h *harness) pipeline(id string) *structs.Pipeline {
	h.t.Helper()
	p, err := h.f.State().PipelineByID(nil, id)
	if err != nil || p == nil {
		h.t.Fatalf("pipeline %s: %v, %v", id, p, err)
	}
	return p
}

func (h *harness) eval(id string) *structs.Evaluation {
	h.t.Helper()
	e, err := h.f.State().EvalByID(nil, id)
	if err != nil || e == nil {
		h.t.Fatalf("eval %s: %v, %v", id, e, err)
	}
	return e
}

func (h *harness) alloc(id string) *structs.Allocation {
	h.t.Helper()
	a, err := h.f.State().AllocByID(nil, id)
	if err != nil || a == nil {
		h.t.Fatalf("alloc %s: %v, %v", id, a, err)
	}
	return a
}

// persisted is the FSM's state as a Raft snapshot would write it.
func persisted(t *testing.T, f *FSM) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := f.State().Persist(&buf); err != nil {
		t.Fatalf("Persist: %v", err)
	}
	return buf.Bytes()
}

// jobSpec is a job with two steps; opts tune it.
func jobSpec(name string, opts ...func(*structs.JobSpec)) *structs.JobSpec {
	s := &structs.JobSpec{Name: name, Priority: 50, Resources: structs.Resources{CPU: 250, MemoryMB: 64},
		Steps: []structs.StepSpec{{Name: "compile", Run: "make"}, {Name: "check", Run: "make check"}}}
	for _, o := range opts {
		o(s)
	}
	return s
}

func needs(names ...string) func(*structs.JobSpec) {
	return func(s *structs.JobSpec) { s.Needs = names }
}

func retry(attempts int, backoff time.Duration) func(*structs.JobSpec) {
	return func(s *structs.JobSpec) {
		s.Retry = structs.RetryPolicy{Attempts: attempts, Backoff: structs.Duration(backoff)}
	}
}

// newPipeline builds a register request's pipeline and jobs; job IDs are
// "<pipeline>-<job name>".
func newPipeline(id string, specs ...*structs.JobSpec) (*structs.Pipeline, []*structs.Job) {
	p := &structs.Pipeline{ID: id, Name: id, Spec: &structs.PipelineSpec{Name: id, Jobs: specs}}
	var jobs []*structs.Job
	for _, s := range specs {
		jobs = append(jobs, &structs.Job{ID: id + "-" + s.Name, PipelineID: id, Name: s.Name, Spec: s,
			Env: map[string]string{"CI": "true"}, Priority: s.Priority})
	}
	return p, jobs
}

func errOf(resp any) error {
	err, _ := resp.(error)
	return err
}

// resched gives the job a reschedule policy.
func resched(attempts int, delay, maxDelay time.Duration) func(*structs.JobSpec) {
	return func(s *structs.JobSpec) {
		s.Reschedule = &structs.ReschedulePolicy{Attempts: attempts, Delay: structs.Duration(delay), MaxDelay: structs.Duration(maxDelay)}
	}
}

// retriesUsed is how many retries (the job's own failures) j has used.
func retriesUsed(j *structs.Job) int { return j.Attempt - 1 - j.Rescheduled }
