package server

import (
	"slices"
	"testing"

	"github.com/ciplat/ciplat/fsm/state"
	"github.com/ciplat/ciplat/fsm/structs"
	"github.com/ciplat/ciplat/scheduler"
)

func TestCapacityMarks_ChangeAfter(t *testing.T) {
	since := capacityMarks{allocs: 10, nodes: 20, config: 5}
	for _, tc := range []struct {
		name string
		cur  capacityMarks
		want capacityChange
	}{
		{"nothing moved", since, capacityChange{nodesSince: 20}},
		{"allocs", capacityMarks{allocs: 11, nodes: 20, config: 5}, capacityChange{allocs: true, nodesSince: 20}},
		{"nodes", capacityMarks{allocs: 10, nodes: 21, config: 5}, capacityChange{nodes: true, nodesSince: 20}},
		{"config: everything", capacityMarks{allocs: 10, nodes: 20, config: 6}, capacityChange{all: true, nodesSince: 20}},
	} {
		if got := tc.cur.changeAfter(since); got != tc.want {
			t.Errorf("%s: %+v, want %+v", tc.name, got, tc.want)
		}
	}
	// A plan's snapshot at index 15: allocs written at 10 were seen, the
	// node written at 20 was not.
	if got := since.changeAfter(at(15)); got.allocs || !got.nodes || got.nodesSince != 15 || got.all {
		t.Errorf("after a snapshot at 15: %+v, want nodes changed since 15 only", got)
	}
	if got := since.latest(); got != 20 {
		t.Errorf("latest = %d, want 20", got)
	}
}

// TestUnblockable: a change offers again only the blocked evaluations it
// may let run. Freed capacity helps a job that ran out of cpu or memory,
// not one every node filtered out; a node that joined or changed helps a
// job it could run now; a configuration change offers everything.
func TestUnblockable(t *testing.T) {
	st, err := state.NewStateStore()
	if err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	node := func(id string, cpu int, drivers ...string) *structs.Node {
		n := &structs.Node{ID: id, Name: id, Status: structs.NodeStatusReady, Eligible: true,
			Resources: structs.Resources{CPU: cpu, MemoryMB: 4096}, Drivers: map[string]*structs.DriverInfo{}}
		for _, d := range drivers {
			n.Drivers[d] = &structs.DriverInfo{Detected: true, Healthy: true}
		}
		return n
	}
	// blockedJob is a PENDING job waiting on evaluation "e-"+id, whose last
	// attempt left metrics m.
	var blocked []*structs.Evaluation
	blockedJob := func(index uint64, id, driver string, cpu int, m *structs.PlacementMetrics) {
		j := &structs.Job{ID: id, PipelineID: "p", Name: id, State: structs.JobPending, EvalID: "e-" + id, Placement: m,
			Spec: &structs.JobSpec{Name: id, Driver: driver, Resources: structs.Resources{CPU: cpu, MemoryMB: 64}}}
		must(st.UpsertJobs(index, j))
		blocked = append(blocked, &structs.Evaluation{ID: "e-" + id, JobID: id, Status: structs.EvalBlocked})
	}
	must(st.UpsertNodes(10, node("n1", 4000, "exec")))
	must(st.UpsertAllocs(11, &structs.Allocation{ID: "a1", JobID: "other", PipelineID: "q", NodeID: "n1",
		Resources: structs.Resources{CPU: 3000, MemoryMB: 64}, DesiredStatus: structs.AllocDesiredRun,
		ClientStatus: structs.AllocClientRunning}))
	blockedJob(12, "cpu", "", 2000, &structs.PlacementMetrics{NodesEvaluated: 1, NodesExhausted: 1, ExhaustedBy: map[string]int{"cpu": 1}})
	blockedJob(13, "docker", "docker", 100, &structs.PlacementMetrics{NodesEvaluated: 1, NodesFiltered: 1,
		FilteredBy: map[string]int{"missing driver docker": 1}})
	blockedJob(14, "unexplained", "docker", 100, nil)
	must(st.UpsertJobs(15, &structs.Job{ID: "moved", PipelineID: "p", Name: "moved", State: structs.JobScheduled,
		EvalID: "e-moved", Spec: &structs.JobSpec{Name: "moved"}}))
	blocked = append(blocked, &structs.Evaluation{ID: "e-moved", JobID: "moved", Status: structs.EvalBlocked},
		&structs.Evaluation{ID: "e-gone", JobID: "gone", Status: structs.EvalBlocked})
	// Nodes written after the look at 15: one with docker, one with room
	// for "cpu", last one too small for "cpu" and without docker.
	must(st.UpsertNodes(20, node("dock", 500, "docker")))
	must(st.UpsertNodes(21, node("big", 8000, "exec")))
	must(st.UpsertNodes(22, node("small", 1000, "exec")))

	sched := scheduler.New(scheduler.Config{})
	always := []string{"e-moved", "e-gone"} // the worker acks what moved on
	for _, tc := range []struct {
		name       string
		change     capacityChange
		preemption bool
		want       []string
	}{
		{"nothing moved", capacityChange{}, false, nil},
		{"configuration: all", capacityChange{all: true}, false, []string{"e-cpu", "e-docker", "e-unexplained", "e-moved", "e-gone"}},
		{"allocations: the job out of cpu, and the one without metrics", capacityChange{allocs: true}, false,
			[]string{"e-cpu", "e-unexplained"}},
		{"node too small and without docker joined", capacityChange{nodes: true, nodesSince: 21}, false, nil},
		{"preemption: a node too small but passing the checks", capacityChange{nodes: true, nodesSince: 21}, true, []string{"e-cpu"}},
		{"big node joined", capacityChange{nodes: true, nodesSince: 20}, false, []string{"e-cpu"}},
		{"node with docker joined", capacityChange{nodes: true, nodesSince: 19}, false, []string{"e-cpu", "e-docker", "e-unexplained"}},
		{"allocations and nodes", capacityChange{allocs: true, nodes: true, nodesSince: 21}, false, []string{"e-cpu", "e-unexplained"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := unblockable(st, sched, tc.preemption, blocked, tc.change)
			if err != nil {
				t.Fatal(err)
			}
			want := tc.want
			if tc.change.allocs || tc.change.nodes {
				want = append(slices.Clone(want), always...)
			}
			if gotIDs := ids(got); !sameSet(gotIDs, want) {
				t.Errorf("unblocked %v, want %v", gotIDs, want)
			}
		})
	}
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}
