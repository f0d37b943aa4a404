package fsm

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/ciplat/ciplat/fsm/state"
	"github.com/ciplat/ciplat/fsm/structs"
)

// fuzzSep separates the entries of one fuzz input. Encoded entries are a
// type byte and UTF-8 JSON, which never holds 0xFF.
const fuzzSep = 0xFF

// fuzzMaxEntries bounds the entries one input applies.
const fuzzMaxEntries = 16

// FuzzApply feeds FSM.Apply random and mutated entries of every message
// type, on top of a state with nodes, a pipeline, a placement and a
// running job (fuzzPrefix). One input is up to fuzzMaxEntries entries
// separated by fuzzSep. Two FSMs fed the same entries must not panic, must
// answer each entry alike, and must end in byte-identical snapshots that
// restore to the same bytes again.
//
// The one panic allowed is the rule for unknown types: an entry whose type
// number has no applier and lacks structs.IgnoreUnknownTypeFlag must make
// both FSMs panic (a real server stops there, so the input's later entries
// are not applied); an unknown type with the flag is skipped like any
// entry, without a panic.
//
// The seed corpus is a valid entry of each type (built with
// structs.Encode), the same with each of its JSON fields set to null, to a
// wrong type or to a huge number, and the whole valid sequence in one input.
func FuzzApply(f *testing.F) {
	seeds := fuzzSeedEntries()
	var all [][]byte
	for _, s := range seeds {
		f.Add(s)
		all = append(all, s)
		for _, m := range mutateEntry(s) {
			f.Add(m)
		}
	}
	f.Add(bytes.Join(all, []byte{fuzzSep}))
	// Unknown types: flagged ignorable (skipped), then not (a panic).
	f.Add(append([]byte{byte(unknownTypeNumber | structs.IgnoreUnknownTypeFlag)}, "{}"...))
	f.Add(bytes.Join([][]byte{all[0], {byte(unknownTypeNumber), '{', '}'}, all[1]}, []byte{fuzzSep}))

	f.Fuzz(func(t *testing.T, data []byte) {
		entries := bytes.Split(data, []byte{fuzzSep})
		if len(entries) > fuzzMaxEntries {
			entries = entries[:fuzzMaxEntries]
		}
		prefixOnce.Do(func() {
			h := fuzzPrefix(t)
			prefixState, prefixIndex = persisted(t, h.f), h.index
		})
		a, b := restoredFSM(t, prefixState), restoredFSM(t, prefixState)
		index := prefixIndex
		for _, e := range entries {
			index++
			if unknownNonIgnorable(e) {
				_, pa := applyRecover(a, &raft.Log{Index: index, Term: 1, Type: raft.LogCommand, Data: slices.Clone(e)})
				_, pb := applyRecover(b, &raft.Log{Index: index, Term: 1, Type: raft.LogCommand, Data: slices.Clone(e)})
				if pa == nil || pb == nil {
					t.Fatalf("entry %d of unknown type %d without the ignorable flag: want both FSMs to panic, got %v / %v", index, e[0], pa, pb)
				}
				break
			}
			ra := a.Apply(&raft.Log{Index: index, Term: 1, Type: raft.LogCommand, Data: slices.Clone(e)})
			rb := b.Apply(&raft.Log{Index: index, Term: 1, Type: raft.LogCommand, Data: slices.Clone(e)})
			if sa, sb := fmt.Sprint(ra), fmt.Sprint(rb); sa != sb {
				t.Fatalf("entry %d: the two FSMs answered differently:\n%s\n%s", index, sa, sb)
			}
		}
		pa, pb := persisted(t, a), persisted(t, b)
		if !bytes.Equal(pa, pb) {
			t.Fatalf("the two FSMs diverged:\n%s\nvs\n%s", pa, pb)
		}
		s, err := state.Restore(bytes.NewReader(pa))
		if err != nil {
			t.Fatalf("the snapshot does not restore: %v", err)
		}
		var again bytes.Buffer
		if err := s.Persist(&again); err != nil {
			t.Fatalf("persist the restored state: %v", err)
		}
		if !bytes.Equal(pa, again.Bytes()) {
			t.Fatalf("the snapshot does not restore to the same bytes:\n%s\nvs\n%s", pa, again.Bytes())
		}
	})
}

// unknownNonIgnorable reports whether e's type number has no applier and
// lacks structs.IgnoreUnknownTypeFlag: Apply must panic on it.
func unknownNonIgnorable(e []byte) bool {
	if len(e) == 0 {
		return false // refused as empty, not a type
	}
	raw := structs.MessageType(e[0])
	if raw.Ignorable() || raw == structs.StateRestoreRequestType {
		return false
	}
	_, known := appliers[raw]
	return !known
}

// The state every FuzzApply input starts from, built once.
var (
	prefixOnce  sync.Once
	prefixState []byte
	prefixIndex uint64
)

// restoredFSM is a new FSM restored from a persisted state.
func restoredFSM(t *testing.T, snap []byte) *FSM {
	t.Helper()
	f, err := New(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Restore(io.NopCloser(bytes.NewReader(snap))); err != nil {
		t.Fatal(err)
	}
	return f
}

// fuzzPrefix is a harness with two nodes, a pipeline p1 (build, test
// needing build, lint with a retry), build placed on n1 as alloc-p1-build-1
// and running, and a scheduler configuration.
func fuzzPrefix(t *testing.T) *harness {
	h := newHarness(t)
	h.addNode("n1")
	h.addNode("n2")
	p, jobs := newPipeline("p1", jobSpec("build"), jobSpec("test", needs("build")), jobSpec("lint", retry(2, time.Hour)))
	h.register(p, jobs)
	a := h.place("p1-build", "n1")
	h.report(a, structs.AllocClientRunning, structs.JobRunning, "")
	h.must(structs.SchedulerConfigRequestType, &structs.SchedulerConfigRequest{WriteRequest: h.wr(),
		Config: &structs.SchedulerConfig{Algorithm: "binpack", Preemption: true}})
	return h
}

// fuzzSeedEntries is one valid entry of every message type, each meaningful
// on top of fuzzPrefix.
func fuzzSeedEntries() [][]byte {
	wr := structs.WriteRequest{Timestamp: t0.Add(time.Hour)}
	exit := 1
	p2, jobs2 := newPipeline("p2", jobSpec("only", retry(1, time.Second)))
	reqs := []struct {
		mt  structs.MessageType
		req any
	}{
		{structs.PipelineRegisterRequestType, &structs.PipelineRegisterRequest{WriteRequest: wr, Pipeline: p2, Jobs: jobs2, IdempotencyKey: "k"}},
		{structs.PlanApplyRequestType, &structs.PlanApplyRequest{WriteRequest: wr,
			Allocs: []*structs.Allocation{{ID: "alloc-lint", JobID: "p1-lint", NodeID: "n2", EvalID: structs.EvalID(3, "p1-lint"),
				Resources: structs.Resources{CPU: 250, MemoryMB: 64}, Score: 0.5}},
			Evals:       []*structs.Evaluation{{ID: "e-blocked", JobID: "p1-lint", PipelineID: "p1", Status: structs.EvalBlocked, StatusDescription: "no room"}},
			Metrics:     map[string]*structs.PlacementMetrics{"p1-lint": {NodesEvaluated: 2, FilteredBy: map[string]int{"x": 1}}},
			Preemptions: []*structs.Preemption{{AllocID: "alloc-p1-build-1", ByAllocID: "alloc-lint", Reason: "r"}}}},
		{structs.AllocClientUpdateRequestType, &structs.AllocClientUpdateRequest{WriteRequest: wr, Updates: []*structs.AllocUpdate{{
			AllocID: "alloc-p1-build-1", ClientStatus: structs.AllocClientFailed, JobState: structs.JobFailed, Reason: "exit 1",
			Steps:  []structs.StepStatus{{Name: "compile", State: structs.StepFailed, ExitCode: &exit, StartedAt: t0, FinishedAt: t0.Add(time.Second)}},
			Driver: "exec", WorkerID: "w1", Image: "busybox", WorkerState: structs.WorkerFailed}}}},
		{structs.PipelineCancelRequestType, &structs.PipelineCancelRequest{WriteRequest: wr, PipelineID: "p1", Reason: "stop"}},
		{structs.NodeRegisterRequestType, &structs.NodeRegisterRequest{WriteRequest: wr, Node: &structs.Node{
			ID: "n3", Name: "three", Status: structs.NodeStatusReady, Eligible: true,
			Resources: structs.Resources{CPU: 2000, MemoryMB: 2048}, Attributes: map[string]string{"os": "linux", "driver.exec": "true"},
			Drivers: map[string]*structs.DriverInfo{"exec": {Detected: true, Healthy: true}}}}},
		{structs.NodeStatusUpdateRequestType, &structs.NodeStatusUpdateRequest{WriteRequest: wr, NodeID: "n1", Status: structs.NodeStatusDown}},
		{structs.EvalUpdateRequestType, &structs.EvalUpdateRequest{WriteRequest: wr, Evals: []*structs.Evaluation{{
			ID: "e-follow", JobID: "p1-lint", PipelineID: "p1", Status: structs.EvalPending, PreviousEval: structs.EvalID(3, "p1-lint"),
			WaitUntil: t0.Add(2 * time.Hour)}}}},
		{structs.NodeDrainRequestType, &structs.NodeDrainRequest{WriteRequest: wr, NodeID: "n1", Enable: true, Deadline: t0.Add(time.Minute)}},
		{structs.NodeEligibilityRequestType, &structs.NodeEligibilityRequest{WriteRequest: wr, NodeID: "n2", Eligible: false}},
		{structs.NodeDrainDeadlineRequestType, &structs.NodeDrainDeadlineRequest{WriteRequest: wr, NodeID: "n1"}},
		{structs.SchedulerConfigRequestType, &structs.SchedulerConfigRequest{WriteRequest: wr,
			Config: &structs.SchedulerConfig{Algorithm: "spread", Workers: new(int)}, CAS: true, CASIndex: 6}},
		{structs.WorkerStopRequestType, &structs.WorkerStopRequest{WriteRequest: wr, AllocID: "alloc-p1-build-1", Reason: "op"}},
		{structs.IdempotencyKeySweepRequestType, &structs.IdempotencyKeySweepRequest{WriteRequest: wr, Cutoff: t0.Add(48 * time.Hour), Limit: 10}},
	}
	var out [][]byte
	for _, r := range reqs {
		b, err := structs.Encode(r.mt, r.req)
		if err != nil {
			panic(err)
		}
		out = append(out, b)
	}
	// A state restore of an empty state.
	f, err := New(nil)
	if err != nil {
		panic(err)
	}
	var st bytes.Buffer
	if err := f.State().Persist(&st); err != nil {
		panic(err)
	}
	b, err := structs.Encode(structs.StateRestoreRequestType, &structs.StateRestoreRequest{WriteRequest: wr, State: st.Bytes()})
	if err != nil {
		panic(err)
	}
	return append(out, b)
}

// oddValues are what a JSON value v is replaced with in the mutated
// seeds: null and a wrong type always, then what hurts its kind most.
func oddValues(v any) []string {
	switch x := v.(type) {
	case string:
		if _, err := time.Parse(time.RFC3339, x); err == nil {
			return []string{`null`, `1`, `"9999-12-31T23:59:59Z"`}
		}
		return []string{`null`, `1`, `""`}
	case float64:
		return []string{`null`, `"x"`, `-1`, `1e309`, `18446744073709551616`}
	case bool:
		return []string{`null`, `"x"`}
	case []any:
		return []string{`null`, `"x"`, `[null]`}
	case map[string]any:
		return []string{`null`, `"x"`, `{"a":null}`}
	}
	return []string{`"x"`}
}

// mutateEntry returns variants of an encoded entry with one JSON field, at
// any depth, replaced by each of its oddValues.
func mutateEntry(entry []byte) [][]byte {
	var doc any
	if err := json.Unmarshal(entry[1:], &doc); err != nil {
		return nil
	}
	var out [][]byte
	var walk func(path []any)
	walk = func(path []any) {
		v := at(doc, path)
		switch x := v.(type) {
		case map[string]any:
			keys := make([]string, 0, len(x))
			for k := range x {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				walk(append(slices.Clone(path), k))
			}
		case []any:
			for i := range x {
				walk(append(slices.Clone(path), i))
			}
		}
		if len(path) == 0 {
			return
		}
		for _, odd := range oddValues(v) {
			var ov any = json.RawMessage(odd)
			mutated := replaceAt(doc, path, ov)
			b, err := json.Marshal(mutated)
			if err != nil {
				continue
			}
			out = append(out, append([]byte{entry[0]}, b...))
		}
	}
	walk(nil)
	return out
}

func at(doc any, path []any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			doc = doc.(map[string]any)[k]
		case int:
			doc = doc.([]any)[k]
		}
	}
	return doc
}

// replaceAt returns a copy of doc with the value at path replaced by v.
func replaceAt(doc any, path []any, v any) any {
	if len(path) == 0 {
		return v
	}
	switch k := path[0].(type) {
	case string:
		m := doc.(map[string]any)
		c := make(map[string]any, len(m))
		for kk, vv := range m {
			c[kk] = vv
		}
		c[k] = replaceAt(m[k], path[1:], v)
		return c
	case int:
		s := slices.Clone(doc.([]any))
		s[k] = replaceAt(s[k], path[1:], v)
		return s
	}
	return doc
}

// TestFuzzApply_SeedsEveryType: FuzzApply's seeds hold one valid entry of
// every message type the FSM applies, so a new type is fuzzed from the day
// it is added.
func TestFuzzApply_SeedsEveryType(t *testing.T) {
	seeded := map[structs.MessageType]bool{}
	for _, e := range fuzzSeedEntries() {
		seeded[structs.MessageType(e[0])] = true
	}
	for mt := range appliers {
		if !seeded[mt] {
			t.Errorf("FuzzApply has no seed entry of type %s: add one to fuzzSeedEntries", mt)
		}
	}
}
