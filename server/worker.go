package server

import (
	"context"
	"errors"
	"math/rand/v2"
)

// schedulerWorker takes evaluations from the broker, asks the pure
// scheduler for a plan against a lock-free snapshot of state, and hands the
// plan to the single plan applier. Many workers run at once; only the
// applier writes.
func (s *Server) schedulerWorker(ctx context.Context, rng *rand.Rand) {
	for {
		ev, err := s.broker.Dequeue(ctx)
		if err != nil {
			return
		}
		snap, err := s.State().Snapshot()
		if err != nil {
			s.log.Error("state snapshot", "err", err)
			s.broker.Nack(ev)
			continue
		}
		job, err := snap.JobByID(nil, ev.JobID)
		if err != nil || job == nil || job.EvalID != ev.ID {
			// The job moved on (placed, cancelled, or a newer evaluation
			// replaced this one): nothing to do.
			s.broker.Ack(ev.ID)
			continue
		}
		plan, err := s.sched.Place(snap, ev, job, rng)
		if err != nil {
			s.log.Error("schedule", "eval", ev.ID, "err", err)
			s.broker.Nack(ev)
			continue
		}
		err = s.plans.Submit(ctx, plan)
		switch {
		case err == nil:
			s.broker.Ack(ev.ID)
		case errors.Is(err, errPlanConflict):
			// Someone else took the capacity first: schedule again on
			// fresher state.
			if !s.broker.Nack(ev) {
				s.log.Warn("evaluation dropped after repeated plan conflicts", "eval", ev.ID)
			}
		case ctx.Err() != nil:
			return
		default:
			s.log.Error("apply plan", "eval", ev.ID, "err", err)
			s.broker.Nack(ev)
		}
	}
}
