package server

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/hashicorp/go-memdb"

	"github.com/ciplat/ciplat/fsm/state"
	"github.com/ciplat/ciplat/fsm/structs"
	"github.com/ciplat/ciplat/server/broker"
)

// The leader feeds the broker from state with blocking queries, never by
// polling: pending evaluations whenever the evaluations change, blocked
// ones whenever capacity may have freed up. Both also wake when a full
// broker makes room again (broker.Broker.Room), and both offer the
// evaluations from inside the query, so a wake-up that changed no index
// still offers them.

// watchPendingEvals feeds every pending evaluation in state to the broker.
func (s *Server) watchPendingEvals(ctx context.Context) {
	s.feedBroker(ctx, "watch evaluations", func(ws memdb.WatchSet, st *state.StateStore) (uint64, []*structs.Evaluation, error) {
		evals, err := st.EvalsByStatus(ws, structs.EvalPending)
		if err != nil {
			return 0, nil, err
		}
		s.metrics.pendingEvals.Store(int64(len(evals)))
		return st.Index(state.TableEvals), evals, nil
	})
}

// watchCapacity offers blocked evaluations again when capacity may have
// freed up for them: an allocation changed (one ended), a node joined or
// changed, or the scheduler configuration changed. It is targeted: from
// what moved since its last look (capacityMarks) it offers only the
// evaluations that change may let run (unblockable), and remembers those a
// full broker refused until the broker makes room.
func (s *Server) watchCapacity(ctx context.Context) {
	var (
		seen   capacityMarks
		looked bool
		owed   []*structs.Evaluation
		index  uint64
	)
	for ctx.Err() == nil {
		idx, err := s.State().BlockingQuery(ctx, index, 5*time.Minute, func(ws memdb.WatchSet, st *state.StateStore) (uint64, error) {
			ws.Add(s.broker.Room())
			// Watch the tables whose changes can free capacity; read the
			// blocked evaluations without watching them (re-blocking an
			// evaluation must not wake this loop).
			cur := marksOf(ws, st)
			blocked, err := st.EvalsByStatus(nil, structs.EvalBlocked)
			if err != nil {
				return 0, err
			}
			s.metrics.blockedEvals.Store(int64(len(blocked)))
			sched, cfg := s.sched.forState(st)
			change := capacityChange{all: true}
			if looked {
				change = cur.changeAfter(seen)
			}
			pick, err := unblockable(st, sched, cfg.Preemption, blocked, change)
			if err != nil {
				return 0, err
			}
			seen, looked = cur, true
			s.metrics.evalsUnblocked.Add(uint64(len(pick)))
			owed = s.broker.EnqueueOwed(uniqueEvals(append(owed, pick...)))
			return cur.latest(), nil
		})
		if err != nil {
			if ctx.Err() == nil {
				s.log.Error("watch capacity", "err", err)
				sleepCtx(ctx, time.Second)
			}
			continue
		}
		index = max(idx, 1)
	}
}

// uniqueEvals drops repeated evaluations (by ID), keeping the first.
func uniqueEvals(evals []*structs.Evaluation) []*structs.Evaluation {
	seen := make(map[string]bool, len(evals))
	return slices.DeleteFunc(evals, func(e *structs.Evaluation) bool {
		dup := seen[e.ID]
		seen[e.ID] = true
		return dup
	})
}

// feedBroker runs blocking queries with read until ctx ends and offers the
// evaluations read to the broker. A query also wakes when the broker makes
// room (its offer is then repeated at the same index). The first run of
// each query only re-reads what the previous wake-up offered, so it offers
// nothing unless the index moved in between.
func (s *Server) feedBroker(ctx context.Context, what string,
	read func(memdb.WatchSet, *state.StateStore) (uint64, []*structs.Evaluation, error)) {
	var index uint64
	for ctx.Err() == nil {
		first := true
		idx, err := s.State().BlockingQuery(ctx, index, 5*time.Minute, func(ws memdb.WatchSet, st *state.StateStore) (uint64, error) {
			ws.Add(s.broker.Room())
			cur, evals, err := read(ws, st)
			if err != nil {
				return 0, err
			}
			if !first || cur != index {
				s.broker.EnqueueAll(evals)
			}
			first = false
			return cur, nil
		})
		if err != nil {
			if ctx.Err() == nil {
				s.log.Error(what, "err", err)
				sleepCtx(ctx, time.Second)
			}
			continue
		}
		index = max(idx, 1)
	}
}

// reapFailedEvals records, through Raft, the evaluations that reached the
// broker's delivery limit: each becomes failed with a description of why,
// so the job's reason shows it, and a job still waiting on it gets a
// follow-up evaluation that waits FailedEvalFollowUp (so a failing
// evaluation neither disappears nor spins). It runs on the leader until
// ctx ends.
func (s *Server) reapFailedEvals(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.broker.FailedCh():
		}
		failed := s.broker.TakeFailed()
		if len(failed) == 0 {
			continue
		}
		ids := make([]string, 0, len(failed))
		var evals []*structs.Evaluation
		st := s.State()
		for _, f := range failed {
			ids = append(ids, f.Eval.ID)
			evals = append(evals, s.failEval(st, f)...)
		}
		if len(evals) > 0 {
			if _, _, err := s.apply(structs.EvalUpdateRequestType, &structs.EvalUpdateRequest{
				WriteRequest: structs.WriteRequest{Timestamp: s.now()},
				Evals:        evals,
			}); err != nil {
				// Leadership is likely lost; the next leader offers the
				// still-pending evaluations again.
				s.log.Error("record failed evaluations", "count", len(failed), "err", err)
			} else {
				s.metrics.evalsFailed.Add(uint64(len(failed)))
			}
		}
		s.broker.FailedRecorded(ids...)
	}
}

// failEval returns the evaluation updates that record f failed: the
// evaluation itself and, when its job still waits on it, a delayed
// follow-up. Nothing when the evaluation already finished.
func (s *Server) failEval(st *state.StateStore, f *broker.FailedEval) []*structs.Evaluation {
	cur, err := st.EvalByID(nil, f.Eval.ID)
	if err != nil || cur == nil || (cur.Status != structs.EvalPending && cur.Status != structs.EvalBlocked) {
		return nil
	}
	e := cur.Copy()
	e.Status = structs.EvalFailed
	e.StatusDescription = fmt.Sprintf("evaluation failed after %d deliveries: %s", f.Deliveries, f.Reason)
	j, err := st.JobByID(nil, e.JobID)
	if err != nil || j == nil || j.State != structs.JobPending || j.EvalID != e.ID {
		return []*structs.Evaluation{e}
	}
	retry := s.now().Add(s.cfg.failedEvalFollowUp())
	e.StatusDescription += fmt.Sprintf("; placement is tried again at %s", retry.Format(time.RFC3339))
	follow := &structs.Evaluation{
		ID:           uuid.NewString(),
		JobID:        e.JobID,
		PipelineID:   e.PipelineID,
		Priority:     e.Priority,
		Status:       structs.EvalPending,
		TriggeredBy:  structs.TriggerFailedFollowUp,
		WaitUntil:    retry,
		PreviousEval: e.ID,
	}
	return []*structs.Evaluation{e, follow}
}
