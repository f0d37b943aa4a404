package server

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/hashicorp/go-memdb"

	"github.com/ciplat/ciplat/fsm/state"
	"github.com/ciplat/ciplat/fsm/structs"
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
	if err := s.raft.Barrier(time.Minute).Error(); err != nil {
		s.log.Error("leader barrier failed", "err", err)
		return
	}
	s.log.Info("leadership acquired; leader duties started")
	s.broker.SetEnabled(true)
	defer s.broker.SetEnabled(false)

	var wg sync.WaitGroup
	run := func(f func(context.Context)) {
		wg.Add(1)
		go func() { defer wg.Done(); f(ctx) }()
	}
	run(s.broker.runDelayed)
	run(s.planApplier)
	run(s.watchPendingEvals)
	run(s.watchCapacity)
	for i := 0; i < s.cfg.SchedulerWorkers; i++ {
		seed := uint64(i + 1)
		run(func(ctx context.Context) {
			s.schedulerWorker(ctx, rand.New(rand.NewPCG(seed, uint64(s.now().UnixNano()))))
		})
	}
	<-ctx.Done()
	wg.Wait()
	s.log.Info("leader duties stopped")
}

// watchPendingEvals feeds every pending evaluation in state to the broker,
// waking on each change of the evaluations table (a blocking query, no polling).
func (s *Server) watchPendingEvals(ctx context.Context) {
	var index uint64
	for ctx.Err() == nil {
		var evals []*structs.Evaluation
		idx, err := s.State().BlockingQuery(ctx, index, 5*time.Minute, func(ws memdb.WatchSet, st *state.StateStore) (uint64, error) {
			var err error
			evals, err = st.EvalsByStatus(ws, structs.EvalPending)
			return st.Index("evals"), err
		})
		if err != nil {
			if ctx.Err() == nil {
				s.log.Error("watch evaluations", "err", err)
				sleepCtx(ctx, time.Second)
			}
			continue
		}
		index = idx
		for _, e := range evals {
			s.broker.Enqueue(e)
		}
	}
}

// watchCapacity re-enqueues blocked evaluations when capacity may have
// freed up: an allocation changed or a node joined or changed.
func (s *Server) watchCapacity(ctx context.Context) {
	var index uint64
	for ctx.Err() == nil {
		var blocked []*structs.Evaluation
		idx, err := s.State().BlockingQuery(ctx, index, 5*time.Minute, func(ws memdb.WatchSet, st *state.StateStore) (uint64, error) {
			// Watch the tables whose changes can free capacity; read the
			// blocked evaluations without watching them (re-blocking an
			// evaluation must not wake this loop).
			idx := max(st.IndexWatch(ws, "allocs"), st.IndexWatch(ws, "nodes"))
			var err error
			blocked, err = st.EvalsByStatus(nil, structs.EvalBlocked)
			return idx, err
		})
		if err != nil {
			if ctx.Err() == nil {
				s.log.Error("watch capacity", "err", err)
				sleepCtx(ctx, time.Second)
			}
			continue
		}
		index = idx
		for _, e := range blocked {
			s.broker.Enqueue(e)
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
