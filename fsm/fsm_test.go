package fsm

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-memdb"
	"github.com/hashicorp/raft"

	"github.com/ciplat/ciplat/fsm/state"
	"github.com/ciplat/ciplat/fsm/structs"
)

// scenario drives every message type through a pipeline's life: register,
// plan (placed and blocked), client updates, retry, node down, cancel.
func scenario(h *harness) {
	h.t.Helper()
	h.addNode("n1")
	h.addNode("n2")
	p, jobs := newPipeline("p1", jobSpec("build", retry(1, time.Second)), jobSpec("test", needs("build")), jobSpec("lint"))
	h.register(p, jobs)
	b := h.place("p1-build", "n1")
	h.report(b, structs.AllocClientRunning, structs.JobRunning, "")
	h.report(b, structs.AllocClientFailed, structs.JobFailed, "exit 1")
	h.must(structs.NodeStatusUpdateRequestType, &structs.NodeStatusUpdateRequest{WriteRequest: h.wr(), NodeID: "n2", Status: structs.NodeStatusDown})
	h.report(h.place("p1-build", "n1"), structs.AllocClientComplete, structs.JobSucceeded, "")
	blocked := h.eval(h.job("p1-lint").EvalID).Copy()
	blocked.Status = structs.EvalBlocked
	blocked.StatusDescription = "no node fits"
	h.must(structs.PlanApplyRequestType, &structs.PlanApplyRequest{WriteRequest: h.wr(), Evals: []*structs.Evaluation{blocked},
		Metrics: map[string]*structs.PlacementMetrics{"p1-lint": {NodesEvaluated: 2, FilteredBy: map[string]int{"node down": 1, "cpu": 1}}}})
	h.place("p1-test", "n1")
	h.must(structs.EvalUpdateRequestType, &structs.EvalUpdateRequest{WriteRequest: h.wr(), Evals: []*structs.Evaluation{{
		ID: "e-extra", JobID: "p1-lint", PipelineID: "p1", Status: structs.EvalFailed, TriggeredBy: structs.TriggerPlanRejected}}})
	p2, jobs2 := newPipeline("p2", jobSpec("only"))
	h.register(p2, jobs2)
	h.must(structs.PipelineCancelRequestType, &structs.PipelineCancelRequest{WriteRequest: h.wr(), PipelineID: "p1"})
}

// TestFSM_Apply_RefusedEntries: an empty entry and a known type whose body
// does not decode are refused with an error (no panic, nothing written); a
// non-command log is ignored. Unknown types: unknown_type_test.go.
func TestFSM_Apply_RefusedEntries(t *testing.T) {
	f, err := New(nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	tests := []struct {
		name string
		log  *raft.Log
		want string // "" means a nil response
	}{
		{"empty entry", &raft.Log{Index: 2, Type: raft.LogCommand}, "empty log entry"},
		{"bad JSON", &raft.Log{Index: 3, Type: raft.LogCommand, Data: []byte{byte(structs.NodeRegisterRequestType), '{'}}, "decode NodeRegister entry"},
		{"not a command", &raft.Log{Index: 4, Type: raft.LogConfiguration, Data: []byte{200}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := f.Apply(tt.log)
			if tt.want == "" {
				if resp != nil {
					t.Fatalf("Apply = %v, want nil", resp)
				}
				return
			}
			err := errOf(resp)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Apply = %v, want an error containing %q", resp, tt.want)
			}
		})
	}
	if got := f.State().LatestIndex(); got != 0 {
		t.Fatalf("refused entries wrote state up to index %d", got)
	}
}

// TestFSM_Apply_Deterministic replays the same log on a second FSM (in one
// batch) and expects byte-identical state.
func TestFSM_Apply_Deterministic(t *testing.T) {
	h := newHarness(t)
	scenario(h)

	replay, err := New(nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	resps := replay.ApplyBatch(h.logs)
	if len(resps) != len(h.logs) {
		t.Fatalf("ApplyBatch returned %d responses for %d logs", len(resps), len(h.logs))
	}
	a, b := persisted(t, h.f), persisted(t, replay)
	if !bytes.Equal(a, b) {
		t.Fatalf("replayed state differs:\n%s\nvs\n%s", a, b)
	}
	if len(a) < 1000 {
		t.Fatalf("scenario state is suspiciously small (%d bytes)", len(a))
	}
}

// sink is a raft.SnapshotSink over a buffer.
type sink struct {
	bytes.Buffer
	closed, cancelled bool
}

func (s *sink) ID() string        { return "test" }
func (s *sink) Close() error      { s.closed = true; return nil }
func (s *sink) Cancel() error     { s.cancelled = true; return nil }
func (s *sink) Reader() io.Reader { return bytes.NewReader(s.Bytes()) }

func TestFSM_SnapshotRestore(t *testing.T) {
	h := newHarness(t)
	scenario(h)
	want := persisted(t, h.f)

	snap, err := h.f.Snapshot()
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	defer snap.Release()
	// Entries applied after Snapshot are not in it.
	p, jobs := newPipeline("late", jobSpec("x"))
	h.register(p, jobs)

	var out sink
	if err := snap.Persist(&out); err != nil {
		t.Fatalf("Persist: %v", err)
	}
	if !out.closed || out.cancelled {
		t.Fatalf("sink closed=%v cancelled=%v, want closed", out.closed, out.cancelled)
	}

	restored, err := New(nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	old := restored.State()
	if err := restored.Restore(io.NopCloser(out.Reader())); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if got := persisted(t, restored); !bytes.Equal(got, want) {
		t.Fatalf("restored state differs:\n%s\nvs\n%s", got, want)
	}
	if restored.State() == old {
		t.Fatalf("Restore kept the old store")
	}
	select {
	case <-old.AbandonCh():
	default:
		t.Fatalf("Restore did not abandon the old store")
	}

	// A bad stream leaves the state as it was.
	before := restored.State()
	if err := restored.Restore(io.NopCloser(strings.NewReader("garbage"))); err == nil {
		t.Fatalf("Restore of garbage: want an error")
	}
	if restored.State() != before {
		t.Fatalf("a failed Restore replaced the store")
	}
}

// TestFSM_Restore_WakesBlockingQuery: a reader blocked on the old store sees
// the restored one.
func TestFSM_Restore_WakesBlockingQuery(t *testing.T) {
	src := newHarness(t)
	scenario(src)
	var out sink
	snap, _ := src.f.Snapshot()
	if err := snap.Persist(&out); err != nil {
		t.Fatalf("Persist: %v", err)
	}

	f, _ := New(nil)
	ran := make(chan struct{}, 1)
	done := make(chan uint64, 1)
	go func() {
		idx, _ := f.State().BlockingQuery(context.Background(), 1, time.Minute, func(ws memdb.WatchSet, s *state.StateStore) (uint64, error) {
			_, _ = s.PipelineByID(ws, "p1")
			select {
			case ran <- struct{}{}:
			default:
			}
			return s.Index(state.TablePipelines), nil
		})
		done <- idx
	}()
	<-ran
	if err := f.Restore(io.NopCloser(out.Reader())); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	select {
	case idx := <-done:
		if want := src.f.State().Index(state.TablePipelines); idx != want {
			t.Fatalf("blocking query returned index %d, want %d", idx, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("blocking query did not wake up on Restore")
	}
}
