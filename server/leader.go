package server

import (
	"context"
	"sync"
	"time"
)

// monitorLeadership starts the leader's duties when this server becomes the
// Raft leader and stops them when it stops being leader or shuts down.
func (s *Server) monitorLeadership() {
	defer s.wg.Done()
	var duties *leaderDuties
	halt := func() {
		if duties != nil {
			duties.stop()
			duties = nil
		}
	}
	for {
		select {
		case isLeader := <-s.leaderCh:
			if isLeader && duties == nil {
				duties = s.startLeaderDuties()
			} else if !isLeader {
				halt()
			}
		case <-s.shutdownCtx.Done():
			halt()
			return
		}
	}
}

// leaderDuties is a running leaderLoop.
type leaderDuties struct {
	cancel context.CancelFunc
	done   chan struct{}
}

func (s *Server) startLeaderDuties() *leaderDuties {
	ctx, cancel := context.WithCancel(s.shutdownCtx)
	d := &leaderDuties{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(d.done)
		s.leaderLoop(ctx)
	}()
	return d
}

// stop ends the duties and waits for them.
func (d *leaderDuties) stop() {
	d.cancel()
	<-d.done
}

// leaderLoop runs the leader's duties until ctx ends. It first waits for
// the FSM to catch up with everything committed, then rebuilds the broker's
// queue from state, so no pending evaluation is lost across a leader change.
func (s *Server) leaderLoop(ctx context.Context) {
	for {
		err := s.waitRaft(s.raft.Barrier(time.Minute))
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return // shutting down or no longer leader
		}
		// Still leader (ctx is live): a barrier that timed out on a busy
		// host is retried rather than leaving a leader without duties.
		s.log.Error("leader barrier failed; retrying", "err", err)
		sleepCtx(ctx, time.Second)
		if ctx.Err() != nil {
			return
		}
	}
	if hold := s.cfg.beforeLeaderReady; hold != nil {
		hold(ctx)
		if ctx.Err() != nil {
			return
		}
	}
	s.log.Info("leadership acquired; leader duties started")
	s.broker.SetEnabled(true)
	defer s.broker.SetEnabled(false)
	s.leaderReady.Store(true)
	defer s.leaderReady.Store(false)

	var wg sync.WaitGroup
	run := func(f func(context.Context)) {
		wg.Add(1)
		go func() { defer wg.Done(); f(ctx) }()
	}
	run(s.broker.RunDelayed)
	run(s.applier.Run)
	run(s.watchPendingEvals)
	run(s.watchCapacity)
	run(s.watchNodeLiveness) // node_liveness.go
	run(s.watchDrains)       // node_drain.go
	run(s.reconcileLoop)
	run(s.sweepIdempotencyKeys) // idempotency_sweep.go
	run(s.publishEvents)
	// Scheduling (eval_watch.go, scheduler_config.go).
	run(s.broker.RunTimeouts)
	run(s.reapFailedEvals)
	run(s.runSchedulerWorkers)
	<-ctx.Done()
	wg.Wait()
	s.log.Info("leader duties stopped")
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
