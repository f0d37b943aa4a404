package server

import (
	"context"
	"slices"
	"time"

	"github.com/hashicorp/go-memdb"

	"github.com/ciplat/ciplat/fsm/state"
	"github.com/ciplat/ciplat/fsm/structs"
)

// drainWatchWait bounds one wait of the drainer when no deadline is near.
const drainWatchWait = 5 * time.Minute

// watchDrains is the leader duty that finishes drains. A draining node
// gets no new placements (Node.Schedulable); for each one it watches:
//
//   - once the node runs nothing (no live allocation), the drain is
//     complete: NodeDrain{Complete}, which leaves the node ineligible;
//   - once its deadline passed with work still running, the work is
//     stopped and rescheduled elsewhere: NodeDrainDeadline (the moves do not
//     use up the jobs' retries).
//
// It wakes on every change of the nodes and allocations tables and at the
// nearest deadline.
func (s *Server) watchDrains(ctx context.Context) {
	var index uint64
	timeout := drainWatchWait
	for ctx.Err() == nil {
		var done, due []string
		next := drainWatchWait
		idx, err := s.State().BlockingQuery(ctx, index, timeout, func(ws memdb.WatchSet, st *state.StateStore) (uint64, error) {
			now := s.now()
			done, due, next = nil, nil, drainWatchWait
			nodes, err := st.Nodes(ws)
			if err != nil {
				return 0, err
			}
			for _, n := range nodes {
				if !n.Drain {
					continue
				}
				allocs, err := st.AllocsByNode(ws, n.ID)
				if err != nil {
					return 0, err
				}
				switch live := slices.ContainsFunc(allocs, (*structs.Allocation).Live); {
				case !live:
					done = append(done, n.ID)
				case n.DrainDeadline.IsZero():
				case !now.Before(n.DrainDeadline):
					if anyToStop(allocs) {
						due = append(due, n.ID)
					}
				default:
					next = min(next, n.DrainDeadline.Sub(now))
				}
			}
			return max(st.Index(state.TableNodes), st.Index(state.TableAllocs)), nil
		})
		if err != nil {
			if ctx.Err() == nil {
				s.log.Error("watch drains", "err", err)
				sleepCtx(ctx, time.Second)
			}
			continue
		}
		if index != 0 && idx == index {
			// The wait ended at a deadline with no change: what the
			// query saw is from before the wait. Look again at once.
			index = 0
			continue
		}
		for _, id := range due {
			s.log.Info("drain deadline passed; stopping what the node still runs", "node_id", id)
			if _, _, err := s.apply(structs.NodeDrainDeadlineRequestType, &structs.NodeDrainDeadlineRequest{
				WriteRequest: structs.WriteRequest{Timestamp: s.now()}, NodeID: id}); err != nil {
				s.log.Warn("drain deadline entry failed", "node_id", id, "err", err)
			}
		}
		for _, id := range done {
			s.log.Info("drain complete; the node stays ineligible", "node_id", id)
			if _, _, err := s.apply(structs.NodeDrainRequestType, &structs.NodeDrainRequest{
				WriteRequest: structs.WriteRequest{Timestamp: s.now()}, NodeID: id, Complete: true}); err != nil {
				s.log.Warn("drain completion entry failed", "node_id", id, "err", err)
			}
		}
		index, timeout = max(idx, 1), next
	}
}

// anyToStop reports whether some live allocation has not been asked to stop.
func anyToStop(allocs []*structs.Allocation) bool {
	for _, a := range allocs {
		if a.Live() && a.DesiredStatus != structs.AllocDesiredStop {
			return true
		}
	}
	return false
}
