package state

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/ciplat/ciplat/fsm/structs"
)

var t0 = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

func testStore(t *testing.T) *StateStore {
	t.Helper()
	s, err := NewStateStore()
	if err != nil {
		t.Fatalf("NewStateStore: %v", err)
	}
	return s
}

func mockPipeline(id string, jobIDs ...string) *structs.Pipeline {
	return &structs.Pipeline{
		ID: id, Name: "p-" + id, JobIDs: jobIDs, State: structs.PipelinePending,
		Spec:        &structs.PipelineSpec{Name: "p-" + id, Env: map[string]string{"A": "1"}},
		SubmittedAt: t0,
	}
}

func mockJob(pipelineID, id string) *structs.Job {
	return &structs.Job{
		ID: id, PipelineID: pipelineID, Name: "job-" + id, State: structs.JobPending, Attempt: 1,
		Spec:      &structs.JobSpec{Name: "job-" + id, Steps: []structs.StepSpec{{Name: "s", Run: "true"}}},
		Steps:     []structs.StepStatus{{Name: "s", State: structs.StepPending}},
		CreatedAt: t0,
	}
}

func mockNode(id string) *structs.Node {
	return &structs.Node{
		ID: id, Name: "node-" + id, Status: structs.NodeStatusReady, Eligible: true,
		Resources:  structs.Resources{CPU: 4000, MemoryMB: 8192},
		Attributes: map[string]string{"os": "linux"},
		Drivers:    map[string]*structs.DriverInfo{"exec": {Detected: true, Healthy: true}},
	}
}

func mockAlloc(id, jobID, nodeID string) *structs.Allocation {
	return &structs.Allocation{
		ID: id, JobID: jobID, PipelineID: "p1", NodeID: nodeID, Attempt: 1,
		DesiredStatus: structs.AllocDesiredRun, ClientStatus: structs.AllocClientPending, CreatedAt: t0,
	}
}

func mockEval(id, jobID, status string) *structs.Evaluation {
	return &structs.Evaluation{ID: id, JobID: jobID, PipelineID: "p1", Priority: 50, Status: status,
		TriggeredBy: structs.TriggerJobRegister}
}

// jsonOf renders v for comparisons that must ignore nil-versus-empty.
func jsonOf(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	return string(b)
}

// ids lists the IDs of rows for compact comparisons.
func ids[T any](rows []*T, id func(*T) string) []string {
	out := []string{}
	for _, r := range rows {
		out = append(out, id(r))
	}
	return out
}

func pipelineID(p *structs.Pipeline) string { return p.ID }
func jobID(j *structs.Job) string           { return j.ID }
func allocID(a *structs.Allocation) string  { return a.ID }
func nodeID(n *structs.Node) string         { return n.ID }
func evalID(e *structs.Evaluation) string   { return e.ID }
