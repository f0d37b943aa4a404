package server

import (
	"github.com/hashicorp/go-memdb"

	"github.com/ciplat/ciplat/fsm/state"
	"github.com/ciplat/ciplat/fsm/structs"
	"github.com/ciplat/ciplat/scheduler"
)

// capacityMarks are the indexes of the tables whose changes can let a
// blocked evaluation run, as the capacity watcher last saw them.
type capacityMarks struct{ allocs, nodes, config uint64 }

// marksOf reads the marks of st, adding their tables to ws (if non-nil).
func marksOf(ws memdb.WatchSet, st *state.StateStore) capacityMarks {
	return capacityMarks{
		allocs: st.IndexWatch(ws, state.TableAllocs),
		nodes:  st.IndexWatch(ws, state.TableNodes),
		config: st.IndexWatch(ws, state.TableSchedulerConfig),
	}
}

// latest is the highest of the marks: a state that shows it shows every
// allocation, node and configuration written up to it.
func (m capacityMarks) latest() uint64 { return max(m.allocs, m.nodes, m.config) }

// at is the marks of a state seen at index i (Plan.SnapshotIndex): what
// changed after i moved past it.
func at(i uint64) capacityMarks { return capacityMarks{allocs: i, nodes: i, config: i} }

// capacityChange is what moved between two looks at the capacity tables.
type capacityChange struct {
	// all: the scheduler configuration changed (algorithm, preemption), or
	// there was no earlier look: every blocked evaluation is offered.
	all bool
	// allocs: allocations changed, so capacity may have freed on any node.
	allocs bool
	// nodes: nodes joined or changed after index nodesSince.
	nodes      bool
	nodesSince uint64
}

// changeAfter says what moved from since to m.
func (m capacityMarks) changeAfter(since capacityMarks) capacityChange {
	return capacityChange{all: m.config > since.config, allocs: m.allocs > since.allocs,
		nodes: m.nodes > since.nodes, nodesSince: since.nodes}
}

// unblockable picks the blocked evaluations a change may let run, so the
// leader offers those again and leaves the rest blocked (each offer costs a
// scheduling pass). st is the state the change was read from, sched the
// scheduler in force there; with preemption on, a changed node need only
// pass the feasibility checks (evictions may make room).
//
//   - allocations changed: the evaluations whose job ran out of capacity
//     somewhere (ranOutOfCapacity). A job every node filtered out (driver,
//     constraint, node status) cannot be helped by freed capacity;
//   - nodes joined or changed: the evaluations whose job one of those nodes
//     could run now (scheduler.FitsNode);
//   - everything when the change says so (capacityChange.all), and an
//     evaluation whose job is gone or moved on (the worker acks it).
func unblockable(st *state.StateStore, sched *scheduler.Scheduler, preemption bool,
	blocked []*structs.Evaluation, ch capacityChange) ([]*structs.Evaluation, error) {
	if ch.all {
		return blocked, nil
	}
	if len(blocked) == 0 || (!ch.allocs && !ch.nodes) {
		return nil, nil
	}
	var changed []*structs.Node
	if ch.nodes {
		nodes, err := st.Nodes(nil)
		if err != nil {
			return nil, err
		}
		for _, n := range nodes {
			if n.ModifyIndex > ch.nodesSince {
				changed = append(changed, n)
			}
		}
	}
	allocsOf := map[string][]*structs.Allocation{}
	var out []*structs.Evaluation
	for _, e := range blocked {
		job, err := st.JobByID(nil, e.JobID)
		if err != nil {
			return nil, err
		}
		if job == nil || job.Spec == nil || job.State != structs.JobPending || job.EvalID != e.ID {
			out = append(out, e)
			continue
		}
		if ch.allocs && ranOutOfCapacity(job) {
			out = append(out, e)
			continue
		}
		for _, n := range changed {
			allocs, ok := allocsOf[n.ID]
			if !ok {
				if allocs, err = st.AllocsByNode(nil, n.ID); err != nil {
					return nil, err
				}
				allocsOf[n.ID] = allocs
			}
			if sched.FitsNode(n, job, allocs, preemption) {
				out = append(out, e)
				break
			}
		}
	}
	return out, nil
}

// ranOutOfCapacity reports whether the job's last placement attempt found
// a node that passed every check but lacked cpu or memory (or left no
// metrics to tell): freed capacity may let it run.
func ranOutOfCapacity(job *structs.Job) bool {
	return job.Placement == nil || job.Placement.NodesExhausted > 0
}
