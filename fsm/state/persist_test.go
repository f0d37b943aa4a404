package state

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/ciplat/ciplat/fsm/structs"
)

// fill writes rows into every table.
func fill(t *testing.T, s *StateStore) {
	t.Helper()
	exit := 1
	p := mockPipeline("p1", "j1", "j2")
	p.IdempotencyKey = "k1"
	j1 := mockJob("p1", "j1")
	j1.Env = map[string]string{"X": "<y>"}
	j1.History = []structs.AttemptRecord{{Attempt: 1, State: structs.JobFailed, Reason: "exit 1", FinishedAt: t0}}
	j1.Steps[0].ExitCode = &exit
	j1.Placement = &structs.PlacementMetrics{NodesEvaluated: 3, FilteredBy: map[string]int{"b": 1, "a": 2}}
	e := mockEval("e1", "j1", structs.EvalBlocked)
	e.WaitUntil = t0
	steps := []func() error{
		func() error { return s.UpsertNodes(1, mockNode("n2"), mockNode("n1")) },
		func() error { return s.UpsertPipeline(2, p) },
		func() error { return s.UpsertPipeline(3, mockPipeline("p2")) },
		func() error { return s.UpsertJobs(4, j1, mockJob("p1", "j2")) },
		func() error { return s.UpsertEvals(5, e, mockEval("e2", "j2", structs.EvalPending)) },
		func() error { return s.UpsertAllocs(6, mockAlloc("a1", "j1", "n1")) },
		func() error { return s.Write(7, func(tx *WriteTxn) error { return tx.AppendEvents(mockEvents(3)) }) },
		func() error { return s.Write(8, func(tx *WriteTxn) error { return tx.AppendEvents(mockEvents(2)) }) },
		func() error {
			return s.Write(9, func(tx *WriteTxn) error {
				if err := tx.UpsertIdempotencyKey(&structs.IdempotencyKey{Key: "k1", BodyHash: "sha256:ab", PipelineID: "p1", ExpiresAt: t0}); err != nil {
					return err
				}
				return tx.UpsertIdempotencyKey(&structs.IdempotencyKey{Namespace: "team-a", Key: "k1", PipelineID: "p2", ExpiresAt: t0.Add(-time.Hour)})
			})
		},
	}
	s.SetEventLimit(4) // the second append prunes one event of index 7
	for _, step := range steps {
		if err := step(); err != nil {
			t.Fatalf("fill: %v", err)
		}
	}
}

func TestStateStore_PersistRestore(t *testing.T) {
	src := testStore(t)
	fill(t, src)

	var buf bytes.Buffer
	if err := src.Persist(&buf); err != nil {
		t.Fatalf("Persist: %v", err)
	}
	persisted := buf.String()
	dst, err := Restore(&buf)
	if err != nil {
		t.Fatalf("Restore: %v", err)
	}

	tables := []struct {
		name string
		rows func(s *StateStore) any
	}{
		{TablePipelines, func(s *StateStore) any { r, _ := s.Pipelines(nil); return r }},
		{TableJobs, func(s *StateStore) any { r, _ := s.Jobs(nil); return r }},
		{TableAllocs, func(s *StateStore) any { r, _ := s.Allocs(nil); return r }},
		{TableNodes, func(s *StateStore) any { r, _ := s.Nodes(nil); return r }},
		{TableEvals, func(s *StateStore) any { r, _ := s.Evals(nil); return r }},
		{TableIndex, func(s *StateStore) any { r, _ := s.Indexes(); return r }},
		{TableEvents, func(s *StateStore) any { r, _ := s.EventsAfter(nil, 0, 0, 0); return r }},
		{"event count", func(s *StateStore) any { return []int{s.EventCount()} }},
		{"events pruned", func(s *StateStore) any { return []uint64{s.EventsPrunedThrough()} }},
		{"node cache", func(s *StateStore) any { snap, _ := s.Snapshot(); r, _ := snap.Nodes(); return r }},
		{TableIdempotencyKeys, func(s *StateStore) any { r, _ := s.IdempotencyKeys(nil); return r }},
		{"idempotency key lookup", func(s *StateStore) any { r, _ := s.IdempotencyKey(nil, "team-a", "k1"); return r }},
		{"idempotency expiry index", func(s *StateStore) any { r, _, _ := s.EarliestIdempotencyExpiry(nil); return []time.Time{r} }},
	}
	for _, tt := range tables {
		t.Run(tt.name, func(t *testing.T) {
			want, got := jsonOf(t, tt.rows(src)), jsonOf(t, tt.rows(dst))
			if got != want {
				t.Fatalf("restored %s:\n got %s\nwant %s", tt.name, got, want)
			}
			if got == "[]" || got == "null" {
				t.Fatalf("table %s is empty: the test does not cover it", tt.name)
			}
		})
	}
	if got := dst.LatestIndex(); got != 9 {
		t.Fatalf("restored LatestIndex = %d, want 9", got)
	}

	// Persisting the restored store writes the same bytes.
	var again bytes.Buffer
	if err := dst.Persist(&again); err != nil {
		t.Fatalf("Persist restored: %v", err)
	}
	if again.String() != persisted {
		t.Fatalf("persist after restore differs:\n%s\nvs\n%s", again.String(), persisted)
	}
}

func TestRestore_BadStream(t *testing.T) {
	src := testStore(t)
	fill(t, src)
	var buf bytes.Buffer
	if err := src.Persist(&buf); err != nil {
		t.Fatalf("Persist: %v", err)
	}
	good := buf.String()
	lines := strings.SplitAfter(good, "\n")

	tests := []struct {
		name   string
		stream string
		want   string
	}{
		{"empty", "", "read header"},
		{"other format", `{"format":"nomad","version":1}` + "\n", `format "nomad"`},
		{"newer version", `{"format":"ciplat-state","version":2}` + "\n", "version 2"},
		{"cut at a record boundary", strings.Join(lines[:4], ""), "cut short"},
		{"cut mid record", good[:len(good)/2], "cut short"},
		{"unknown table", lines[0] + `{"table":"widgets","row":{}}` + "\n", `unknown table "widgets"`},
		{"wrong row count", strings.Join(lines[:2], "") + `{"end":true,"rows":7}` + "\n", "footer counts 7 rows, read 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Restore(strings.NewReader(tt.stream))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Restore = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}
