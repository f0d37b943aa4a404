package fsm

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/ciplat/ciplat/fsm/structs"
)

// TestFSM_PoisonNodeRegister is issue 12's poison entry: a node whose
// drivers map holds a null. Apply must refuse it (as every server would),
// log it with its index, and leave the state as it was.
func TestFSM_PoisonNodeRegister(t *testing.T) {
	var logs bytes.Buffer
	f, err := New(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		t.Fatal(err)
	}
	before := persisted(t, f)
	raw := []byte(`{"timestamp":"2025-03-04T05:06:07Z","node":{"id":"n1","name":"n1","status":"ready","eligible":true,` +
		`"resources":{"cpu":1000,"memory":1024},"drivers":{"exec":null}}}`)
	data := append([]byte{byte(structs.NodeRegisterRequestType)}, raw...)
	resp := f.Apply(&raft.Log{Index: 7, Term: 1, Type: raft.LogCommand, Data: data})
	err, _ = resp.(error)
	if !errors.Is(err, structs.ErrInvalidRequest) || !strings.Contains(err.Error(), "drivers.exec") {
		t.Fatalf("Apply = %v, want an ErrInvalidRequest naming drivers.exec", resp)
	}
	if got := persisted(t, f); !bytes.Equal(got, before) {
		t.Fatalf("a refused entry changed the state:\n%s", got)
	}
	if !strings.Contains(logs.String(), "index=7") || !strings.Contains(logs.String(), "level=WARN") {
		t.Fatalf("refusal not logged at warn with its index: %q", logs.String())
	}
}

// TestFSM_ApplyRefusesMalformed sends one malformed entry of every message
// type: each is refused with ErrInvalidRequest (no panic, nothing written).
func TestFSM_ApplyRefusesMalformed(t *testing.T) {
	ts := `"timestamp":"2025-03-04T05:06:07Z"`
	tests := []struct {
		name string
		mt   structs.MessageType
		body string
		want string // in the error
	}{
		{"register no pipeline", structs.PipelineRegisterRequestType, `{` + ts + `}`, "pipeline"},
		{"register null job", structs.PipelineRegisterRequestType, `{` + ts + `,"pipeline":{"id":"p","spec":{"name":"p","jobs":[]}},"jobs":[null]}`, "jobs[0]"},
		{"register null spec job", structs.PipelineRegisterRequestType, `{` + ts + `,"pipeline":{"id":"p","spec":{"name":"p","jobs":[null]}},"jobs":[{"id":"j","spec":{"name":"a"}}]}`, "pipeline.spec.jobs[0]"},
		{"register job without spec", structs.PipelineRegisterRequestType, `{` + ts + `,"pipeline":{"id":"p","spec":{"name":"p"}},"jobs":[{"id":"j"}]}`, "jobs[0].spec"},
		{"register pipeline without spec", structs.PipelineRegisterRequestType, `{` + ts + `,"pipeline":{"id":"p"},"jobs":[{"id":"j","spec":{"name":"a"}}]}`, "pipeline.spec"},
		{"timestamp far future", structs.PipelineCancelRequestType, `{"timestamp":"9999-12-31T00:00:00Z","pipeline_id":"p"}`, "timestamp"},
		{"plan null alloc", structs.PlanApplyRequestType, `{` + ts + `,"allocs":[null]}`, "allocs[0]"},
		{"plan null eval", structs.PlanApplyRequestType, `{` + ts + `,"evals":[null]}`, "evals[0]"},
		{"plan eval bad status", structs.PlanApplyRequestType, `{` + ts + `,"evals":[{"id":"e","job_id":"j","status":"weird"}]}`, "evals[0].status"},
		{"plan null preemption", structs.PlanApplyRequestType, `{` + ts + `,"preemptions":[null]}`, "preemptions[0]"},
		{"alloc update null", structs.AllocClientUpdateRequestType, `{` + ts + `,"updates":[null]}`, "updates[0]"},
		{"alloc update no id", structs.AllocClientUpdateRequestType, `{` + ts + `,"updates":[{"client_status":"running"}]}`, "updates[0].alloc_id"},
		{"alloc update bad client status", structs.AllocClientUpdateRequestType, `{` + ts + `,"updates":[{"alloc_id":"a","client_status":"zombie"}]}`, "updates[0].client_status"},
		{"alloc update bad job state", structs.AllocClientUpdateRequestType, `{` + ts + `,"updates":[{"alloc_id":"a","job_state":"PENDING"}]}`, "updates[0].job_state"},
		{"alloc update bad step state", structs.AllocClientUpdateRequestType, `{` + ts + `,"updates":[{"alloc_id":"a","steps":[{"name":"s","state":"DANCING"}]}]}`, "updates[0].steps[0].state"},
		{"cancel no id", structs.PipelineCancelRequestType, `{` + ts + `}`, "pipeline_id"},
		{"node null", structs.NodeRegisterRequestType, `{` + ts + `,"node":null}`, "node"},
		{"node no id", structs.NodeRegisterRequestType, `{` + ts + `,"node":{"status":"ready"}}`, "node.id"},
		{"node bad status", structs.NodeRegisterRequestType, `{` + ts + `,"node":{"id":"n","status":"sleepy"}}`, "node.status"},
		{"node null driver", structs.NodeRegisterRequestType, `{` + ts + `,"node":{"id":"n","status":"ready","drivers":{"exec":null}}}`, "node.drivers.exec"},
		{"node status no id", structs.NodeStatusUpdateRequestType, `{` + ts + `,"status":"down"}`, "node_id"},
		{"node status bad", structs.NodeStatusUpdateRequestType, `{` + ts + `,"node_id":"n","status":"sleepy"}`, "status"},
		{"eval update null", structs.EvalUpdateRequestType, `{` + ts + `,"evals":[null]}`, "evals[0]"},
		{"eval update no id", structs.EvalUpdateRequestType, `{` + ts + `,"evals":[{"job_id":"j","status":"pending"}]}`, "evals[0].id"},
		{"restore empty", structs.StateRestoreRequestType, `{` + ts + `}`, "state"},
		{"drain no node", structs.NodeDrainRequestType, `{` + ts + `,"enable":true}`, "node_id"},
		{"drain enable and complete", structs.NodeDrainRequestType, `{` + ts + `,"node_id":"n","enable":true,"complete":true}`, "complete"},
		{"eligibility no node", structs.NodeEligibilityRequestType, `{` + ts + `,"eligible":true}`, "node_id"},
		{"deadline no node", structs.NodeDrainDeadlineRequestType, `{` + ts + `}`, "node_id"},
		{"sched config null", structs.SchedulerConfigRequestType, `{` + ts + `,"config":null}`, "config"},
		{"sched config bad", structs.SchedulerConfigRequestType, `{` + ts + `,"config":{"algorithm":"random"}}`, "config.algorithm"},
		{"worker stop no alloc", structs.WorkerStopRequestType, `{` + ts + `}`, "alloc_id"},
		{"wrong type", structs.NodeStatusUpdateRequestType, `{"node_id":5}`, "decode"},
		{"not json", structs.WorkerStopRequestType, `{`, "decode"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			before := persisted(t, h.f)
			h.index++
			data := append([]byte{byte(tt.mt)}, tt.body...)
			resp := h.f.Apply(&raft.Log{Index: h.index, Term: 1, Type: raft.LogCommand, Data: data})
			err, _ := resp.(error)
			if !errors.Is(err, structs.ErrInvalidRequest) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Apply = %v, want an ErrInvalidRequest naming %q", resp, tt.want)
			}
			if got := persisted(t, h.f); !bytes.Equal(got, before) {
				t.Fatalf("a refused entry changed the state")
			}
		})
	}
}

// TestFSM_StateRestoreRefusesPoisonRows restores an operator's snapshot
// whose node row holds a null driver entry: the entry is refused and the
// old state stays.
func TestFSM_StateRestoreRefusesPoisonRows(t *testing.T) {
	src := newHarness(t)
	src.addNode("n1")
	p, jobs := newPipeline("p1", jobSpec("build"))
	src.register(p, jobs)
	good := persisted(t, src.f)
	tests := []struct{ name, from, to, want string }{
		{"null driver", `"attributes":{"os":"linux"}`, `"attributes":{"os":"linux"},"drivers":{"exec":null}`, `nodes["n1"].drivers.exec`},
		{"job without spec", `"pipeline_id":"p1","name":"build","spec":{`, `"pipeline_id":"p1","name":"build","spex":{`, `jobs["p1-build"].spec`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bad := strings.Replace(string(good), tt.from, tt.to, 1)
			if bad == string(good) {
				t.Fatalf("%q is not in the snapshot:\n%s", tt.from, good)
			}
			h := newHarness(t)
			h.addNode("keep")
			before := persisted(t, h.f)
			err := errOf(h.apply(structs.StateRestoreRequestType, &structs.StateRestoreRequest{WriteRequest: h.wr(), State: []byte(bad)}))
			if !errors.Is(err, structs.ErrInvalidRequest) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("restore = %v, want an ErrInvalidRequest naming %s", err, tt.want)
			}
			if got := persisted(t, h.f); !bytes.Equal(got, before) {
				t.Fatal("a refused restore changed the state")
			}
		})
	}
}

// TestFSM_PipelineRegister_ResetsRescheduled: a submitted job's runtime
// counters start afresh, so an entry cannot hand a job unlimited retries
// (retriesLeft counts Attempt − Rescheduled).
func TestFSM_PipelineRegister_ResetsRescheduled(t *testing.T) {
	h := newHarness(t)
	p, jobs := newPipeline("p1", jobSpec("build"))
	jobs[0].Rescheduled = 1 << 40
	h.register(p, jobs)
	if got := h.job("p1-build").Rescheduled; got != 0 {
		t.Fatalf("registered job has Rescheduled %d, want 0", got)
	}
}
