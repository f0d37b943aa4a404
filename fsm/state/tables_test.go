package state

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/ciplat/ciplat/fsm/structs"
)

func TestStateStore_Pipelines(t *testing.T) {
	s := testStore(t)
	p1 := mockPipeline("p1")
	if err := s.UpsertPipeline(10, p1); err != nil {
		t.Fatalf("UpsertPipeline: %v", err)
	}
	if err := s.UpsertPipeline(11, mockPipeline("p2")); err != nil {
		t.Fatalf("UpsertPipeline: %v", err)
	}

	got, err := s.PipelineByID(nil, "p1")
	if err != nil || got == nil || got.Name != "p-p1" || got.CreateIndex != 10 || got.ModifyIndex != 10 {
		t.Fatalf("PipelineByID(p1) = %+v, %v; want p1 created at 10", got, err)
	}
	if got, err := s.PipelineByID(nil, "nope"); got != nil || err != nil {
		t.Fatalf("PipelineByID(nope) = %v, %v; want nil, nil", got, err)
	}

	// Update: CreateIndex kept, ModifyIndex bumped.
	upd := got.Copy()
	upd.State = structs.PipelineRunning
	if err := s.UpsertPipeline(12, upd); err != nil {
		t.Fatalf("UpsertPipeline update: %v", err)
	}
	got, _ = s.PipelineByID(nil, "p1")
	if got.CreateIndex != 10 || got.ModifyIndex != 12 || got.State != structs.PipelineRunning {
		t.Fatalf("after update: create %d modify %d state %s; want 10, 12, RUNNING", got.CreateIndex, got.ModifyIndex, got.State)
	}

	list, err := s.Pipelines(nil)
	if err != nil {
		t.Fatalf("Pipelines: %v", err)
	}
	if got, want := ids(list, pipelineID), []string{"p2", "p1"}; !slices.Equal(got, want) {
		t.Fatalf("Pipelines = %v, want newest first %v", got, want)
	}
	if got := s.Index(TablePipelines); got != 12 {
		t.Fatalf("Index(pipelines) = %d, want 12", got)
	}
}

func TestStateStore_Jobs(t *testing.T) {
	s := testStore(t)
	if err := s.UpsertPipeline(1, mockPipeline("p1", "j-c", "j-a", "j-b")); err != nil {
		t.Fatalf("UpsertPipeline: %v", err)
	}
	if err := s.UpsertJobs(2, mockJob("p1", "j-a"), mockJob("p1", "j-b"), mockJob("p1", "j-c"), mockJob("p2", "j-x")); err != nil {
		t.Fatalf("UpsertJobs: %v", err)
	}
	got, err := s.JobByID(nil, "j-b")
	if err != nil || got == nil || got.PipelineID != "p1" || got.CreateIndex != 2 {
		t.Fatalf("JobByID = %+v, %v", got, err)
	}
	jobs, err := s.JobsByPipeline(nil, "p1")
	if err != nil {
		t.Fatalf("JobsByPipeline: %v", err)
	}
	if got, want := ids(jobs, jobID), []string{"j-c", "j-a", "j-b"}; !slices.Equal(got, want) {
		t.Fatalf("JobsByPipeline = %v, want the pipeline's JobIDs order %v", got, want)
	}
	// A pipeline not (yet) stored: its jobs by ID.
	jobs, _ = s.JobsByPipeline(nil, "p2")
	if got, want := ids(jobs, jobID), []string{"j-x"}; !slices.Equal(got, want) {
		t.Fatalf("JobsByPipeline(p2) = %v, want %v", got, want)
	}
	all, _ := s.Jobs(nil)
	if got := len(all); got != 4 {
		t.Fatalf("Jobs = %d rows, want 4", got)
	}
	if err := s.UpsertJobs(3, &structs.Job{ID: "orphan"}); err == nil {
		t.Fatalf("UpsertJobs without a pipeline ID: want an error")
	}
	if got := s.Index(TableJobs); got != 2 {
		t.Fatalf("Index(jobs) = %d, want 2", got)
	}
}

func TestStateStore_Allocs(t *testing.T) {
	s := testStore(t)
	if err := s.UpsertAllocs(5, mockAlloc("a1", "j1", "n1"), mockAlloc("a2", "j1", "n2"), mockAlloc("a3", "j2", "n1")); err != nil {
		t.Fatalf("UpsertAllocs: %v", err)
	}
	tests := []struct {
		name string
		got  func() ([]*structs.Allocation, error)
		want []string
	}{
		{"by node n1", func() ([]*structs.Allocation, error) { return s.AllocsByNode(nil, "n1") }, []string{"a1", "a3"}},
		{"by node n2", func() ([]*structs.Allocation, error) { return s.AllocsByNode(nil, "n2") }, []string{"a2"}},
		{"by node none", func() ([]*structs.Allocation, error) { return s.AllocsByNode(nil, "n9") }, []string{}},
		{"by job j1", func() ([]*structs.Allocation, error) { return s.AllocsByJob(nil, "j1") }, []string{"a1", "a2"}},
		{"all", func() ([]*structs.Allocation, error) { return s.Allocs(nil) }, []string{"a1", "a2", "a3"}},
		{"by pipeline p1", func() ([]*structs.Allocation, error) { return s.AllocsByPipeline(nil, "p1") }, []string{"a1", "a2", "a3"}},
		{"by pipeline none", func() ([]*structs.Allocation, error) { return s.AllocsByPipeline(nil, "p9") }, []string{}},
		{"snapshot by pipeline", func() ([]*structs.Allocation, error) {
			snap, err := s.Snapshot()
			if err != nil {
				return nil, err
			}
			return snap.AllocsByPipeline("p1")
		}, []string{"a1", "a2", "a3"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rows, err := tt.got()
			if err != nil {
				t.Fatalf("err = %v", err)
			}
			if got := ids(rows, allocID); !slices.Equal(got, tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
	a, _ := s.AllocByID(nil, "a2")
	if a == nil || a.NodeID != "n2" || a.ModifyIndex != 5 {
		t.Fatalf("AllocByID(a2) = %+v", a)
	}
	if got := s.Index(TableAllocs); got != 5 {
		t.Fatalf("Index(allocs) = %d, want 5", got)
	}
}

func TestStateStore_Nodes(t *testing.T) {
	s := testStore(t)
	if err := s.UpsertNodes(3, mockNode("n2"), mockNode("n3"), mockNode("n1")); err != nil {
		t.Fatalf("UpsertNodes: %v", err)
	}
	n, err := s.NodeByID(nil, "n3")
	if err != nil || n == nil || n.CreateIndex != 3 {
		t.Fatalf("NodeByID = %+v, %v", n, err)
	}
	down := n.Copy()
	down.Status = structs.NodeStatusDown
	if err := s.UpsertNodes(4, down); err != nil {
		t.Fatalf("UpsertNodes: %v", err)
	}
	nodes, err := s.Nodes(nil)
	if err != nil {
		t.Fatalf("Nodes: %v", err)
	}
	if got, want := ids(nodes, nodeID), []string{"n1", "n2", "n3"}; !slices.Equal(got, want) {
		t.Fatalf("Nodes = %v, want %v", got, want)
	}
	if nodes[2].Status != structs.NodeStatusDown || nodes[2].CreateIndex != 3 || nodes[2].ModifyIndex != 4 {
		t.Fatalf("updated node = %+v; want down, create 3, modify 4", nodes[2])
	}
	snap, _ := s.Snapshot()
	cached, _ := snap.Nodes()
	if got := jsonOf(t, cached); got != jsonOf(t, nodes) {
		t.Fatalf("snapshot Nodes() = %s\nwant %s", got, jsonOf(t, nodes))
	}
}

func TestStateStore_Evals(t *testing.T) {
	s := testStore(t)
	if err := s.UpsertEvals(7, mockEval("e1", "j1", structs.EvalPending), mockEval("e2", "j1", structs.EvalBlocked),
		mockEval("e3", "j2", structs.EvalPending)); err != nil {
		t.Fatalf("UpsertEvals: %v", err)
	}
	pending, _ := s.EvalsByStatus(nil, structs.EvalPending)
	if got, want := ids(pending, evalID), []string{"e1", "e3"}; !slices.Equal(got, want) {
		t.Fatalf("EvalsByStatus(pending) = %v, want %v", got, want)
	}
	byJob, _ := s.EvalsByJob(nil, "j1")
	if got, want := ids(byJob, evalID), []string{"e1", "e2"}; !slices.Equal(got, want) {
		t.Fatalf("EvalsByJob(j1) = %v, want %v", got, want)
	}
	e, _ := s.EvalByID(nil, "e1")
	done := e.Copy()
	done.Status = structs.EvalComplete
	if err := s.UpsertEvals(8, done); err != nil {
		t.Fatalf("UpsertEvals: %v", err)
	}
	pending, _ = s.EvalsByStatus(nil, structs.EvalPending)
	if got, want := ids(pending, evalID), []string{"e3"}; !slices.Equal(got, want) {
		t.Fatalf("EvalsByStatus(pending) after completing e1 = %v, want %v", got, want)
	}
	if e, _ := s.EvalByID(nil, "e1"); e.CreateIndex != 7 || e.ModifyIndex != 8 {
		t.Fatalf("e1 indexes = %d/%d, want 7/8", e.CreateIndex, e.ModifyIndex)
	}
	if e.Status != structs.EvalPending {
		t.Fatalf("the row read before the update changed under the reader: %s", e.Status)
	}
}

func TestStateStore_IndexTable(t *testing.T) {
	s := testStore(t)
	if got := s.LatestIndex(); got != 0 {
		t.Fatalf("LatestIndex of an empty store = %d, want 0", got)
	}
	err := s.Write(20, func(tx *WriteTxn) error {
		if err := tx.UpsertNode(mockNode("n1")); err != nil {
			return err
		}
		return tx.UpsertEval(mockEval("e1", "j1", structs.EvalPending))
	})
	if err != nil {
		t.Fatalf("Write: %v", err)
	}
	_ = s.UpsertNodes(21, mockNode("n2"))
	tests := []struct {
		table string
		want  uint64
	}{{TableNodes, 21}, {TableEvals, 20}, {TableJobs, 0}, {TablePipelines, 0}}
	for _, tt := range tests {
		if got := s.Index(tt.table); got != tt.want {
			t.Errorf("Index(%s) = %d, want %d", tt.table, got, tt.want)
		}
	}
	if got := s.LatestIndex(); got != 21 {
		t.Fatalf("LatestIndex = %d, want 21", got)
	}
	if err := s.Write(0, func(*WriteTxn) error { return nil }); err == nil {
		t.Fatalf("Write at index 0: want an error")
	}
}

func TestStateStore_Write_Atomic(t *testing.T) {
	s := testStore(t)
	boom := errors.New("boom")
	err := s.Write(5, func(tx *WriteTxn) error {
		if err := tx.UpsertPipeline(mockPipeline("p1")); err != nil {
			return err
		}
		if err := tx.UpsertNode(mockNode("n1")); err != nil {
			return err
		}
		if p, _ := tx.PipelineByID("p1"); p == nil {
			t.Errorf("the transaction does not see its own write")
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Write = %v, want boom", err)
	}
	if p, _ := s.PipelineByID(nil, "p1"); p != nil {
		t.Fatalf("aborted write left pipeline p1 behind")
	}
	if n, _ := s.Nodes(nil); len(n) != 0 {
		t.Fatalf("aborted write left %d nodes behind", len(n))
	}
	snap, _ := s.Snapshot()
	if n, _ := snap.Nodes(); len(n) != 0 {
		t.Fatalf("aborted write changed the node cache: %d nodes", len(n))
	}
	if got := s.LatestIndex(); got != 0 {
		t.Fatalf("aborted write bumped the index table to %d", got)
	}
}

func TestStateStore_ByIDPrefix(t *testing.T) {
	s := testStore(t)
	pids := []string{"aaaa1", "aaaa2", "aab", "abc1", "abc2", "abc3", "abc4", "abc5", "abc6"}
	for i, id := range pids {
		if err := s.UpsertPipeline(uint64(i+1), mockPipeline(id)); err != nil {
			t.Fatalf("UpsertPipeline: %v", err)
		}
	}
	if err := s.UpsertJobs(100, mockJob("aab", "job-1"), mockJob("aab", "job-12")); err != nil {
		t.Fatalf("UpsertJobs: %v", err)
	}

	tests := []struct {
		prefix    string
		want      string // ID found, or "" for an error
		notFound  bool
		ambiguous string // substring of the ambiguity message
	}{
		{prefix: "aab", want: "aab"},
		{prefix: "aaaa1", want: "aaaa1"},
		{prefix: "aaa", ambiguous: `matches aaaa1, aaaa2; give more`},
		{prefix: "abc", ambiguous: `abc1, abc2, abc3, abc4, abc5 and more`},
		{prefix: "b", notFound: true},
		{prefix: "", notFound: true},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("pipeline %q", tt.prefix), func(t *testing.T) {
			p, err := s.PipelineByIDPrefix(nil, tt.prefix)
			switch {
			case tt.want != "":
				if err != nil || p == nil || p.ID != tt.want {
					t.Fatalf("got %v, %v; want %s", p, err, tt.want)
				}
			case tt.notFound:
				if !errors.Is(err, structs.ErrNotFound) {
					t.Fatalf("err = %v, want ErrNotFound", err)
				}
			default:
				var amb *AmbiguousPrefixError
				if !errors.As(err, &amb) || !errors.Is(err, ErrAmbiguousPrefix) || !strings.Contains(err.Error(), tt.ambiguous) {
					t.Fatalf("err = %v, want an ambiguity error containing %q", err, tt.ambiguous)
				}
			}
		})
	}

	// An exact ID wins over a longer ID it prefixes.
	if j, err := s.JobByIDPrefix(nil, "job-1"); err != nil || j.ID != "job-1" {
		t.Fatalf("JobByIDPrefix(job-1) = %v, %v; want job-1", j, err)
	}
	if j, err := s.JobByIDPrefix(nil, "job-12"); err != nil || j.ID != "job-12" {
		t.Fatalf("JobByIDPrefix(job-12) = %v, %v", j, err)
	}
	if _, err := s.JobByIDPrefix(nil, "job-"); !errors.Is(err, ErrAmbiguousPrefix) {
		t.Fatalf("JobByIDPrefix(job-) = %v, want ambiguous", err)
	}
	if _, err := s.JobByIDPrefix(nil, "x"); !errors.Is(err, structs.ErrNotFound) {
		t.Fatalf("JobByIDPrefix(x) = %v, want ErrNotFound", err)
	}
}

func TestMergeNodes(t *testing.T) {
	node := func(id, name string) *structs.Node { return &structs.Node{ID: id, Name: name} }
	tests := []struct {
		name    string
		old     []string
		changed []string
		want    []string // id:name
	}{
		{"into empty", nil, []string{"b", "a"}, []string{"a:new", "b:new"}},
		{"insert middle and ends", []string{"b", "d"}, []string{"a", "c", "e"}, []string{"a:new", "b:old", "c:new", "d:old", "e:new"}},
		{"replace", []string{"a", "b", "c"}, []string{"b"}, []string{"a:old", "b:new", "c:old"}},
		{"replace and insert", []string{"a", "c"}, []string{"c", "b"}, []string{"a:old", "b:new", "c:new"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var old []*structs.Node
			for _, id := range tt.old {
				old = append(old, node(id, "old"))
			}
			before := jsonOf(t, old)
			changed := map[string]*structs.Node{}
			for _, id := range tt.changed {
				changed[id] = node(id, "new")
			}
			got := []string{}
			for _, n := range mergeNodes(old, changed) {
				got = append(got, n.ID+":"+n.Name)
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("mergeNodes = %v, want %v", got, tt.want)
			}
			if jsonOf(t, old) != before {
				t.Fatalf("mergeNodes changed its input")
			}
		})
	}
}
