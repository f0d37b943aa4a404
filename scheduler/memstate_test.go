package scheduler

import (
	"fmt"
	"slices"
	"strings"

	"github.com/ciplat/ciplat/fsm/structs"
)

// memState is the in-memory State of the tests and benchmarks. A value is an
// immutable snapshot: with returns a new one, sharing what did not change, as
// the go-memdb snapshots the server hands the scheduler do.
type memState struct {
	nodes  []*structs.Node
	allocs map[string][]*structs.Allocation
	// jobs are the jobs Job finds (preemption reads their priorities); set
	// before the first read, then shared by every snapshot.
	jobs map[string]*structs.Job
}

var _ PreemptionState = (*memState)(nil)

// newMemState sorts the nodes by ID, as State.Nodes promises.
func newMemState(nodes []*structs.Node, allocs []*structs.Allocation) *memState {
	s := &memState{
		nodes:  slices.Clone(nodes),
		allocs: make(map[string][]*structs.Allocation),
	}
	slices.SortFunc(s.nodes, func(a, b *structs.Node) int { return strings.Compare(a.ID, b.ID) })
	for _, a := range allocs {
		s.allocs[a.NodeID] = append(s.allocs[a.NodeID], a)
	}
	return s
}

func (s *memState) Nodes() ([]*structs.Node, error) { return s.nodes, nil }

func (s *memState) AllocsByNode(id string) ([]*structs.Allocation, error) { return s.allocs[id], nil }

func (s *memState) Job(id string) (*structs.Job, error) { return s.jobs[id], nil }

// node returns the node with the ID, or nil.
func (s *memState) node(id string) *structs.Node {
	i, ok := slices.BinarySearchFunc(s.nodes, id, func(n *structs.Node, id string) int { return strings.Compare(n.ID, id) })
	if !ok {
		return nil
	}
	return s.nodes[i]
}

// with returns a snapshot that also holds a (or replaces the alloc with a's ID).
func (s *memState) with(a *structs.Allocation) *memState {
	next := &memState{nodes: s.nodes, allocs: make(map[string][]*structs.Allocation, len(s.allocs)+1), jobs: s.jobs}
	for k, v := range s.allocs {
		next.allocs[k] = v
	}
	old := s.allocs[a.NodeID]
	list := make([]*structs.Allocation, 0, len(old)+1)
	replaced := false
	for _, o := range old {
		if o.ID == a.ID {
			o, replaced = a, true
		}
		list = append(list, o)
	}
	if !replaced {
		list = append(list, a)
	}
	next.allocs[a.NodeID] = list
	return next
}

// testNode is a ready, eligible node with a healthy docker and exec driver.
func testNode(id string, cpu, mem int, attrs ...string) *structs.Node {
	n := &structs.Node{
		ID:        id,
		Name:      "name-" + id,
		Status:    structs.NodeStatusReady,
		Eligible:  true,
		Resources: structs.Resources{CPU: cpu, MemoryMB: mem},
		Attributes: map[string]string{
			"os": "linux", "arch": "amd64", "driver.docker": "true",
		},
		Drivers: map[string]*structs.DriverInfo{
			"docker": {Detected: true, Healthy: true},
			"exec":   {Detected: true, Healthy: true},
		},
	}
	if len(attrs)%2 != 0 {
		panic("testNode: attrs must be key, value pairs")
	}
	for i := 0; i < len(attrs); i += 2 {
		n.Attributes[attrs[i]] = attrs[i+1]
	}
	return n
}

// testJob is a job asking for cpu millicores and mem MiB.
func testJob(id string, cpu, mem int) *structs.Job {
	return &structs.Job{
		ID: id, PipelineID: "p-" + id, Name: id, Attempt: 1, Priority: 50,
		State: structs.JobPending,
		Spec:  &structs.JobSpec{Name: id, Resources: structs.Resources{CPU: cpu, MemoryMB: mem}},
	}
}

// testAlloc is a live allocation of res on the node.
func testAlloc(id, nodeID string, cpu, mem int) *structs.Allocation {
	return &structs.Allocation{
		ID: id, NodeID: nodeID, JobID: "job-" + id,
		Resources:     structs.Resources{CPU: cpu, MemoryMB: mem},
		DesiredStatus: structs.AllocDesiredRun, ClientStatus: structs.AllocClientRunning,
	}
}

func testEval(job *structs.Job) *structs.Evaluation {
	return &structs.Evaluation{ID: fmt.Sprintf("eval-%s", job.ID), JobID: job.ID, PipelineID: job.PipelineID, Priority: job.Priority}
}
