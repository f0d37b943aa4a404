package server

import (
	"context"
	"errors"
	"math/rand/v2"

	"github.com/ciplat/ciplat/fsm/structs"
)

// maxPlanRetries is how often a worker schedules an evaluation again on
// fresh state after the plan applier rejected its plan, before it nacks it
// (which counts toward the broker's delivery limit). A conflict only means
// another worker took the capacity first: the next snapshot shows it.
const maxPlanRetries = 3

// schedulerWorker takes evaluations from the broker, asks the pure
// scheduler for a plan against a lock-free snapshot of state, and hands the
// plan to the single plan applier. Many workers run at once; only the
// applier writes. It stops taking evaluations when stop ends, finishing
// the one it holds, and stops at once when ctx (the leader's) ends.
func (s *Server) schedulerWorker(ctx context.Context, stop <-chan struct{}, rng *rand.Rand) {
	dctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-stop:
			cancel()
		case <-dctx.Done():
		}
	}()
	for {
		ev, token, err := s.broker.Dequeue(dctx)
		if err != nil {
			return
		}
		s.processEval(ctx, ev, token, rng)
	}
}

// processEval schedules one evaluation and acks or nacks it.
func (s *Server) processEval(ctx context.Context, ev *structs.Evaluation, token uint64, rng *rand.Rand) {
	start := s.cfg.Now()
	nack := func(reason string) {
		failed, err := s.broker.Nack(ev.ID, token, reason)
		switch {
		case err != nil:
			s.log.Debug("nack", "eval", ev.ID, "err", err)
		case failed:
			s.log.Warn("evaluation reached the delivery limit; recording it failed", "eval", ev.ID, "reason", reason)
		}
	}
	ack := func() {
		if err := s.broker.Ack(ev.ID, token); err != nil {
			s.log.Debug("ack", "eval", ev.ID, "err", err)
		}
	}
	for try := 0; ; try++ {
		snap, err := s.State().Snapshot()
		if err != nil {
			nack("state snapshot: " + err.Error())
			return
		}
		job, err := snap.JobByID(nil, ev.JobID)
		if err != nil || job == nil || job.State != structs.JobPending || job.EvalID != ev.ID {
			// The job moved on (placed, cancelled, or a newer evaluation
			// replaced this one): nothing to do.
			ack()
			return
		}
		sched, cfg := s.sched.forState(snap.StateStore)
		plan, err := sched.Place(snap, ev, job, rng)
		if err != nil {
			s.log.Error("schedule", "eval", ev.ID, "err", err)
			nack("scheduler: " + err.Error())
			return
		}
		if plan.Placement == nil && cfg.Preemption {
			if pp, err := planPreemption(snap, sched, ev, job, rng, plan.Metrics); err != nil {
				s.log.Error("preemption", "eval", ev.ID, "err", err)
			} else if pp != nil {
				plan = pp
			}
		}
		err = s.plans.Submit(ctx, plan)
		switch {
		case err == nil:
			if plan.Placement != nil {
				s.metrics.latency.Observe(s.cfg.Now().Sub(start))
			}
			ack()
			return
		case errors.Is(err, errPlanConflict) && try < maxPlanRetries:
			s.metrics.planRetries.Add(1)
			continue
		case ctx.Err() != nil:
			// Leadership ended: the broker was emptied, and the next
			// leader schedules it from state.
			return
		default:
			if !errors.Is(err, errPlanConflict) {
				s.log.Error("apply plan", "eval", ev.ID, "err", err)
			}
			nack(err.Error())
			return
		}
	}
}
