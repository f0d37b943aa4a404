// Package server is ciplat's server agent: it holds cluster state in a Raft
// FSM (hashicorp/raft over raft-boltdb), finds its peers with serf, forwards
// writes to the leader, and runs the leader's duties: the evaluation broker
// (server/broker), the scheduler workers (sched_worker.go) and the single plan
// applier (server/planapply). The /v1 HTTP layer is server/httpapi, which
// reaches the server only through the Backend that http_backend.go
// implements; the NATS event publisher is server/events.
//
// Every wait on a Raft future goes through waitRaft (raft_wait.go), so no
// goroutine outlives Shutdown on a future Raft abandoned.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"github.com/hashicorp/serf/serf"

	"github.com/ciplat/ciplat/fsm"
	"github.com/ciplat/ciplat/fsm/state"
	"github.com/ciplat/ciplat/fsm/structs"
	"github.com/ciplat/ciplat/server/broker"
	"github.com/ciplat/ciplat/server/httpapi"
	"github.com/ciplat/ciplat/server/planapply"
)

// Server is one server agent.
//
// Lifecycle: New opens the data dir and starts Raft; leader duties start and
// stop with leadership by themselves; Shutdown stops everything once. All
// methods are safe for concurrent use.
type Server struct {
	cfg Config
	log *slog.Logger

	fsm           *fsm.FSM
	raft          *raft.Raft
	raftStore     *raftboltdb.BoltStore
	raftTransport *raft.NetworkTransport
	leaderCh      chan bool

	serf       *serf.Serf
	serfEvents chan serf.Event
	// serverBook remembers the serf addresses of the servers seen alive, so
	// Raft peers missing from serf are joined again (serf_rejoin.go).
	serverBook *serverBook
	// rejoining is set while a rejoin runs; nextRejoin is only touched by
	// the serf event loop.
	rejoining  atomic.Bool
	nextRejoin time.Time
	// reconcileCh wakes the leader's reconcile loop on member events.
	reconcileCh chan struct{}
	// natsRoutesCh wakes the NATS route loop on member events
	// (nats_cluster.go).
	natsRoutesCh chan struct{}
	// bootstrapped is set once Raft was bootstrapped here or found to hold
	// state (or an existing cluster was found): never bootstrap again.
	bootstrapped atomic.Bool
	// leaderReady is set while leader duties run (after the barrier that
	// makes the FSM current), so reads on the leader are never behind.
	leaderReady atomic.Bool
	// forwarder proxies requests to the leader's HTTP API.
	forwarder *forwarder
	// leaveCh is closed when an operator asked this server to leave
	// (PUT /v1/agent/leave); the agent then shuts down.
	leaveCh   chan struct{}
	leaveOnce sync.Once
	// restoring is set while an operator's snapshot restore runs
	// (snapshot_restore.go): one at a time.
	restoring atomic.Bool

	logs *LogStore
	// sched builds the scheduler from the configuration in state
	// (scheduler_config.go); metrics are its atomics (metrics_sched.go).
	sched  *schedulers
	broker *broker.Broker
	plans  *planapply.Queue
	// applier is the single plan applier; it runs on the leader
	// (sched_applier.go).
	applier *planapply.Applier
	metrics *schedMetrics
	// live holds the event bus, the event publisher and the WebSocket hub
	// (live.go).
	live *live
	// nodes holds the capacity gossip member and node heartbeats (node_tracker.go).
	nodes *nodeTracker

	shutdownCtx    context.Context
	shutdownCancel context.CancelFunc
	wg             sync.WaitGroup
	shutdownOnce   sync.Once
	// raftDown is closed once Raft has shut down (or never started):
	// waitRaft (raft_wait.go) stops waiting on futures Raft abandoned.
	raftDown chan struct{}
}

// ErrNoLeader is returned for writes while the cluster has no leader.
var ErrNoLeader = httpapi.ErrNoLeader

// New starts a server on cfg.DataDir.
func New(cfg Config) (*Server, error) {
	cfg.setDefaults()
	if cfg.DataDir == "" {
		return nil, errors.New("server: a data dir is required")
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	f, err := fsm.New(cfg.Logger)
	if err != nil {
		return nil, err
	}
	logs, err := NewLogStore(filepath.Join(cfg.DataDir, "logs"), LogStoreConfig{MaxBytesPerJob: cfg.Logs.MaxBytesPerJob})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		cfg:            cfg,
		log:            cfg.Logger.With("component", "server"),
		fsm:            f,
		logs:           logs,
		sched:          newSchedulers(cfg),
		broker:         broker.New(cfg.Now, cfg.EvalBroker),
		plans:          planapply.NewQueue(),
		metrics:        new(schedMetrics),
		shutdownCtx:    ctx,
		shutdownCancel: cancel,
		reconcileCh:    make(chan struct{}, 1),
		natsRoutesCh:   make(chan struct{}, 1),
		leaveCh:        make(chan struct{}),
		raftDown:       make(chan struct{}),
	}
	s.forwarder = newForwarder(s)
	s.applier = s.newPlanApplier()
	// A part that fails to start stops the ones started before it
	// (Shutdown copes with any partial start) and fails New.
	for _, start := range []func() error{s.setupRaft, s.setupSerf, s.setupNodes, s.startLive} {
		if err := start(); err != nil {
			_ = s.Shutdown()
			return nil, err
		}
	}
	if err := s.startNATSCluster(); err != nil {
		s.log.Warn("gossip the NATS route address", "err", err)
	}
	s.wg.Add(2)
	go s.monitorLeadership()
	go s.sweepLogsLoop()
	return s, nil
}

// State is the current state store (read-only for callers).
func (s *Server) State() *state.StateStore { return s.fsm.State() }

// Logs is the server's step log store.
func (s *Server) Logs() *LogStore { return s.logs }

// RaftAddr is the address Raft listens on.
func (s *Server) RaftAddr() string { return string(s.raftTransport.LocalAddr()) }

// IsLeader reports whether this server is the Raft leader now.
func (s *Server) IsLeader() bool { return s.raft.State() == raft.Leader }

// Leader returns the leader's Raft address, or "" when there is none.
func (s *Server) Leader() string {
	addr, _ := s.raft.LeaderWithID()
	return string(addr)
}

// WaitForLeader blocks until this server is ready (readiness) or ctx ends. On the
// leader it also waits until its duties started, after the FSM applied
// everything committed before (a restart replays the log), so reads that
// follow see it.
func (s *Server) WaitForLeader(ctx context.Context) error {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		if ready, _, _ := s.readiness(); ready { // readiness.go
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for a raft leader: %w", ctx.Err())
		case <-t.C:
		}
	}
}

// Shutdown stops leader duties and Raft and closes the stores. It works
// on a server whose New failed part way (each part stops only if it
// started) and is safe to call more than once.
func (s *Server) Shutdown() error {
	var err error
	s.shutdownOnce.Do(func() {
		s.shutdownCancel()
		s.shutdownNodes()
		if s.serf != nil {
			_ = s.serf.Shutdown()
		}
		if s.raft != nil {
			if e := s.raft.Shutdown().Error(); e != nil {
				err = e
			}
		}
		// Leader duties and writes stop waiting on futures Raft left
		// unanswered (raft_wait.go); then the goroutines can end.
		close(s.raftDown)
		s.wg.Wait()
		s.stopLive()
		s.closeRaft()
		if s.logs != nil {
			s.logs.Close()
		}
		if s.forwarder != nil {
			s.forwarder.close()
		}
	})
	return err
}

func (s *Server) closeRaft() {
	if s.raftTransport != nil {
		_ = s.raftTransport.Close()
	}
	if s.raftStore != nil {
		_ = s.raftStore.Close()
	}
}

// apply commits one entry through Raft and returns what the FSM's Apply
// returned: its response, or the error it returned as a value.
func (s *Server) apply(t structs.MessageType, req any) (any, uint64, error) {
	if s.raft.State() != raft.Leader {
		return nil, 0, ErrNoLeader
	}
	// The FSM's own check, before the entry is proposed: a request every
	// server would refuse never reaches the log (a 400 to an HTTP caller).
	if v, ok := req.(structs.RequestValidator); ok {
		if err := v.Validate(); err != nil {
			return nil, 0, err
		}
	}
	if r, ok := req.(structs.RulesStamper); ok {
		r.StampRules() // this version's Apply rules (docs/cluster.md)
	}
	buf, err := structs.Encode(t, req)
	if err != nil {
		return nil, 0, err
	}
	f := s.raft.Apply(buf, 30*time.Second)
	if err := s.waitRaft(f); err != nil {
		switch {
		case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipLost):
			return nil, 0, ErrNoLeader
		case errors.Is(err, raft.ErrAbortedByRestore):
			// Not applied: an operator's snapshot restore replaced the
			// state while the write waited. Safe to send again.
			return nil, 0, &httpapi.HTTPError{Code: http.StatusServiceUnavailable, RetryAfter: true,
				Msg: "a snapshot restore replaced the cluster's state while this write waited; it was not applied: send it again"}
		case errors.Is(err, raft.ErrRaftShutdown):
			// Raft stopped while the write waited: it may or may not
			// have committed (an idempotency key makes a retry safe).
			return nil, 0, fmt.Errorf("%w: this server shut down while the write waited; it may have been applied", ErrNoLeader)
		}
		return nil, 0, err
	}
	resp := f.Response()
	if e, ok := resp.(error); ok {
		return nil, f.Index(), e
	}
	return resp, f.Index(), nil
}

// now is the server's clock, stamped into entries.
func (s *Server) now() time.Time { return s.cfg.Now().UTC() }
