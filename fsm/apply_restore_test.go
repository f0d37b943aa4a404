package fsm

import (
	"bytes"
	"testing"

	"github.com/ciplat/ciplat/fsm/state"
	"github.com/ciplat/ciplat/fsm/structs"
)

// TestFSM_Apply_StateRestore: an operator's restore entry replaces the whole
// state with the snapshot's, sets every table index to the entry's index
// (past anything the snapshot carried), wakes blocking queries, and
// replays to the same bytes.
func TestFSM_Apply_StateRestore(t *testing.T) {
	h := newHarness(t)
	h.addNode("n1")
	p, jobs := newPipeline("p1", jobSpec("a"))
	h.register(p, jobs)
	snap := persisted(t, h.f)

	p2, jobs2 := newPipeline("p2", jobSpec("b"))
	h.register(p2, jobs2)
	before := h.f.State()

	resp := h.must(structs.StateRestoreRequestType, &structs.StateRestoreRequest{WriteRequest: h.wr(), State: snap})
	rr, ok := resp.(*structs.StateRestoreResponse)
	if !ok || rr.Index != h.index {
		t.Fatalf("response %#v, want index %d", resp, h.index)
	}
	if h.pipeline("p1") == nil {
		t.Fatal("p1 missing after restore")
	}
	if got, _ := h.f.State().PipelineByID(nil, "p2"); got != nil {
		t.Fatal("p2 survived the restore")
	}
	for _, table := range []string{state.TablePipelines, state.TableJobs, state.TableNodes, state.TableEvals, state.TableAllocs} {
		if got := h.f.State().Index(table); got != h.index {
			t.Errorf("index of %s = %d, want the restore entry's %d", table, got, h.index)
		}
	}
	// Blocking queries on the old store move to the new one.
	select {
	case <-before.AbandonCh():
	default:
		t.Fatal("the old state was not abandoned")
	}

	// Writes after the restore raise the indexes again.
	p3, jobs3 := newPipeline("p3", jobSpec("c"))
	h.register(p3, jobs3)
	if got := h.f.State().Index(state.TablePipelines); got != h.index {
		t.Fatalf("pipelines index %d after a write at %d", got, h.index)
	}

	// Replaying the log gives the same state, byte for byte.
	replay := newHarness(t)
	for _, l := range h.logs {
		replay.index = l.Index
		replay.f.Apply(l)
	}
	if !bytes.Equal(persisted(t, h.f), persisted(t, replay.f)) {
		t.Fatal("replay of a log with a restore differs")
	}
}

func TestFSM_Apply_StateRestoreRefusesDamage(t *testing.T) {
	h := newHarness(t)
	p, jobs := newPipeline("p1", jobSpec("a"))
	h.register(p, jobs)
	snap := persisted(t, h.f)
	if err := errOf(h.apply(structs.StateRestoreRequestType, &structs.StateRestoreRequest{WriteRequest: h.wr(), State: snap[:len(snap)/2]})); err == nil {
		t.Fatal("a cut-short snapshot was applied")
	}
	if h.pipeline("p1") == nil {
		t.Fatal("a refused restore changed the state")
	}
}
