package server

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/ciplat/ciplat/fsm/structs"
	"github.com/ciplat/ciplat/server/planapply"
)

// maxPlanRetries is how often a worker schedules an evaluation again on
// fresh state after the plan applier rejected its plan, before it nacks it
// (which counts toward the broker's delivery limit). A conflict only means
// another plan took the capacity first, and its verdict comes once the state
// shows what did.
const maxPlanRetries = 3

// maxPipelineRetries is how often a worker schedules an evaluation again
// after pipeline conflicts (planapply.ErrPipelineConflict) before it nacks it. They
// do not use up maxPlanRetries: each rests on a sibling placed since the
// plan's snapshot, which the next snapshot shows, so re-scoring ends after
// at most one retry per sibling placement; the bound is a safety net for
// very wide pipelines, past which the broker's delivery limit takes over.
const maxPipelineRetries = 64

// maxPlansPerWorker is how many evaluations one worker holds at once:
// while the plans it handed to the applier wait for Raft (milliseconds of
// fsync), it schedules the next ones instead of idling. Their snapshots lack
// the placements still in flight; the applier's re-check turns any overlap
// into a conflict, scheduled again on fresher state.
const maxPlansPerWorker = 8

// evalWork is an evaluation a worker holds.
type evalWork struct {
	ev      *structs.Evaluation
	token   uint64
	started time.Time
	tries   int
	// pipelineTries counts retries after pipeline conflicts.
	pipelineTries int
	// snapIndex is the SnapshotIndex of its last plan.
	snapIndex uint64
}

// planVerdict is the applier's verdict on a worker's plan.
type planVerdict struct {
	w      *evalWork
	placed bool
	err    error
}

// schedulerWorker takes evaluations from the broker, asks the pure
// scheduler for a plan against a lock-free snapshot of state, and hands the
// plan to the single plan applier; it acks the evaluation once the plan is
// committed. Many workers run at once, each holding up to
// maxPlansPerWorker evaluations; only the applier writes. The worker's own
// goroutine does all the scheduling (its rng is not shared). It stops
// taking evaluations when stop ends and returns once the plans it has in
// flight are decided; it returns at once when ctx (the leader's) ends.
//
// A scheduler worker is a goroutine of the leader; it is not a CI worker
// (the container or Pod that runs a job's steps, http_workers.go).
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

	// The feeder takes an evaluation from the broker whenever the worker
	// holds fewer than maxPlansPerWorker (a slot each).
	slots := make(chan struct{}, maxPlansPerWorker)
	got := make(chan *evalWork)
	go func() {
		defer close(got)
		for {
			select {
			case slots <- struct{}{}:
			case <-dctx.Done():
				return
			}
			ev, token, err := s.broker.Dequeue(dctx)
			if err != nil {
				return
			}
			select {
			case got <- &evalWork{ev: ev, token: token, started: s.cfg.Now()}:
			case <-ctx.Done():
				return
			}
		}
	}()

	verdicts := make(chan planVerdict, maxPlansPerWorker)
	inflight := 0
	var retries []*evalWork
	handle := func(w *evalWork) {
		if s.scheduleEval(ctx, w, rng, verdicts) {
			inflight++
		} else {
			<-slots
		}
	}
	for {
		if len(retries) > 0 {
			w := retries[0]
			retries = retries[1:]
			handle(w)
			continue
		}
		if got == nil && inflight == 0 {
			return // stopped, and every plan decided
		}
		select {
		case w, ok := <-got:
			if !ok {
				got = nil
				continue
			}
			handle(w)
		case v := <-verdicts:
			inflight--
			if s.planDecided(ctx, v) {
				<-slots
			} else {
				retries = append(retries, v.w)
			}
		case <-ctx.Done():
			return
		}
	}
}

// scheduleEval schedules one evaluation. It reports true when it handed a
// plan to the applier (its verdict will come on verdicts), false when the
// evaluation is done with (acked or nacked).
func (s *Server) scheduleEval(ctx context.Context, w *evalWork, rng *rand.Rand, verdicts chan<- planVerdict) bool {
	ev := w.ev
	snap, err := s.State().Snapshot()
	if err != nil {
		s.nack(w, "state snapshot: "+err.Error())
		return false
	}
	job, err := snap.JobByID(nil, ev.JobID)
	if err != nil || job == nil || job.State != structs.JobPending || job.EvalID != ev.ID {
		// The job moved on (placed, cancelled, or a newer evaluation
		// replaced this one): nothing to do.
		s.ack(w)
		return false
	}
	sched, cfg := s.sched.forState(snap.StateStore)
	plan, err := sched.Place(snap, ev, job, rng)
	if err != nil {
		s.log.Error("schedule", "eval", ev.ID, "err", err)
		s.nack(w, "scheduler: "+err.Error())
		return false
	}
	if plan.Placement == nil && cfg.Preemption {
		if pp, err := sched.Preempt(snap, ev, job, rng, plan.Metrics); err != nil {
			s.log.Error("preemption", "eval", ev.ID, "err", err)
		} else if pp != nil {
			plan = pp
		}
	}
	plan.SnapshotIndex = marksOf(nil, snap.StateStore).latest()
	w.snapIndex = plan.SnapshotIndex
	placed := plan.Placement != nil
	err = s.plans.SubmitAsync(ctx, plan, func(err error) {
		verdicts <- planVerdict{w: w, placed: placed, err: err}
	})
	if err != nil {
		return false // leadership ended: the next leader schedules it from state
	}
	return true
}

// planDecided acks or nacks an evaluation on its plan's verdict. It reports
// false when the evaluation should be scheduled again (a conflict, retries
// left).
func (s *Server) planDecided(ctx context.Context, v planVerdict) bool {
	switch {
	case v.err == nil && !v.placed && v.w.tries < maxPlanRetries && s.missedUnblock(v.w):
		v.w.tries++
		s.metrics.planRetries.Add(1)
		return false
	case v.err == nil:
		if v.placed {
			s.metrics.latency.Observe(s.cfg.Now().Sub(v.w.started))
		}
		s.ack(v.w)
	case errors.Is(v.err, planapply.ErrPipelineConflict) && v.w.pipelineTries < maxPipelineRetries:
		v.w.pipelineTries++
		s.metrics.planRetries.Add(1)
		return false
	case errors.Is(v.err, planapply.ErrConflict) && v.w.tries < maxPlanRetries:
		v.w.tries++
		s.metrics.planRetries.Add(1)
		return false
	case ctx.Err() != nil:
		// Leadership ended: the broker was emptied, and the next leader
		// schedules it from state.
	default:
		if !planapply.IsConflict(v.err) {
			s.log.Error("apply plan", "eval", v.w.ev.ID, "err", v.err)
		}
		s.nack(v.w, v.err.Error())
	}
	return true
}

// missedUnblock reports whether state changed, after the snapshot an
// evaluation found no node in, in a way that may let it run (unblockable):
// then the worker schedules it again instead of leaving it blocked. The
// capacity watcher cannot offer it meanwhile (the broker refuses an
// evaluation it holds) and a blocked evaluation re-recorded with the same
// reason writes nothing that would wake the watcher, so without this check
// a node that joined while the job was being scheduled could be missed
// (Nomad's blocked evaluations check the same "missed unblock").
func (s *Server) missedUnblock(w *evalWork) bool {
	if w.snapIndex == 0 {
		return false
	}
	st := s.State()
	ch := marksOf(nil, st).changeAfter(at(w.snapIndex))
	if !ch.all && !ch.allocs && !ch.nodes {
		return false
	}
	sched, cfg := s.sched.forState(st)
	pick, err := unblockable(st, sched, cfg.Preemption, []*structs.Evaluation{w.ev}, ch)
	return err == nil && len(pick) > 0
}

func (s *Server) ack(w *evalWork) {
	if err := s.broker.Ack(w.ev.ID, w.token); err != nil {
		s.log.Debug("ack", "eval", w.ev.ID, "err", err)
	}
}

func (s *Server) nack(w *evalWork, reason string) {
	failed, err := s.broker.Nack(w.ev.ID, w.token, reason)
	switch {
	case err != nil:
		s.log.Debug("nack", "eval", w.ev.ID, "err", err)
	case failed:
		s.log.Warn("evaluation reached the delivery limit; recording it failed", "eval", w.ev.ID, "reason", reason)
	}
}
