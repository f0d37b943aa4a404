package server

import (
	"context"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-memdb"

	"github.com/ciplat/ciplat/fsm/state"
	"github.com/ciplat/ciplat/fsm/structs"
	"github.com/ciplat/ciplat/scheduler"
)

// Defaults of the server's scheduling bounds (Config).
const (
	DefaultMaxPendingEvals    = 100_000
	DefaultFailedEvalFollowUp = time.Minute
)

func (c *Config) maxPendingEvals() int {
	if c.MaxPendingEvals <= 0 {
		return DefaultMaxPendingEvals
	}
	return c.MaxPendingEvals
}

func (c *Config) failedEvalFollowUp() time.Duration {
	if c.FailedEvalFollowUp <= 0 {
		return DefaultFailedEvalFollowUp
	}
	return c.FailedEvalFollowUp
}

// schedulers builds the pure scheduler from the scheduler configuration: the
// one an operator stored through Raft (PUT /v1/operator/scheduler) or, until
// then, the agent's flags. A Scheduler holds compiled-constraint caches, so
// it is built once per configuration and shared by every worker.
type schedulers struct {
	agent structs.SchedulerConfig
	cache atomic.Pointer[schedEntry]
}

// schedEntry is the scheduler built for the configuration stored at index
// (0: none stored, the agent's).
type schedEntry struct {
	index uint64
	cfg   structs.SchedulerConfig
	sched *scheduler.Scheduler
}

func newSchedulers(cfg Config) *schedulers {
	algo := cfg.SchedulerAlgorithm
	if algo == "" {
		algo = scheduler.AlgorithmBinPack
	}
	workers := cfg.SchedulerWorkers
	return &schedulers{agent: structs.SchedulerConfig{Algorithm: algo, Workers: &workers}}
}

// effective is the configuration in force given the stored one (nil: none):
// stored fields win, a stored config without Workers keeps the agent's.
func (ss *schedulers) effective(stored *structs.SchedulerConfig) structs.SchedulerConfig {
	if stored == nil {
		return *ss.agent.Copy()
	}
	c := *stored.Copy()
	if c.Workers == nil {
		c.Workers = ss.agent.Copy().Workers
	}
	return c
}

// forState returns the scheduler and configuration in force in st. Workers
// call it with the snapshot they place against, so a placement always uses
// the configuration of the state it read.
func (ss *schedulers) forState(st *state.StateStore) (*scheduler.Scheduler, structs.SchedulerConfig) {
	stored, _ := st.SchedulerConfig(nil)
	var index uint64
	if stored != nil {
		index = stored.ModifyIndex
	}
	if e := ss.cache.Load(); e != nil && e.index == index {
		return e.sched, e.cfg
	}
	cfg := ss.effective(stored)
	e := &schedEntry{index: index, cfg: cfg, sched: scheduler.New(scheduler.Config{Algorithm: cfg.Algorithm})}
	ss.cache.Store(e)
	return e.sched, e.cfg
}

// runSchedulerWorkers keeps as many scheduler workers running as the
// configuration in force says, starting and stopping them when it changes
// (a blocking query on the scheduler_config table). A stopped worker
// finishes the evaluation it holds. It runs on the leader until ctx ends.
func (s *Server) runSchedulerWorkers(ctx context.Context) {
	var (
		wg      sync.WaitGroup
		stops   []context.CancelFunc
		started uint64
	)
	defer func() {
		for _, stop := range stops {
			stop()
		}
		wg.Wait()
		s.metrics.workers.Store(0)
	}()
	var index uint64
	for ctx.Err() == nil {
		want := 0
		idx, err := s.State().BlockingQuery(ctx, index, 5*time.Minute, func(ws memdb.WatchSet, st *state.StateStore) (uint64, error) {
			stored, err := st.SchedulerConfig(ws)
			if err != nil {
				return 0, err
			}
			want = *s.sched.effective(stored).Workers
			return max(1, st.Index(state.TableSchedulerConfig)), nil
		})
		if err != nil {
			if ctx.Err() == nil {
				s.log.Error("watch scheduler config", "err", err)
				sleepCtx(ctx, time.Second)
			}
			continue
		}
		index = idx
		for len(stops) < want {
			started++
			wctx, stop := context.WithCancel(ctx)
			stops = append(stops, stop)
			rng := rand.New(rand.NewPCG(started, uint64(s.now().UnixNano())))
			wg.Add(1)
			s.metrics.workersLive.Add(1)
			go func() {
				defer wg.Done()
				defer s.metrics.workersLive.Add(-1)
				s.schedulerWorker(ctx, wctx.Done(), rng)
			}()
		}
		for len(stops) > want {
			stops[len(stops)-1]()
			stops = stops[:len(stops)-1]
		}
		if n := int64(len(stops)); s.metrics.workers.Swap(n) != n {
			s.log.Info("scheduler workers", "count", n)
		}
		s.metrics.workersIndex.Store(index)
	}
}
