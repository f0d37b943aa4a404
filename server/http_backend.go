package server

import (
	"net/http"
	"time"

	"github.com/ciplat/ciplat/api"
	"github.com/ciplat/ciplat/fsm/structs"
	"github.com/ciplat/ciplat/server/httpapi"
)

// The server is the HTTP layer's Backend; this file is all of it that
// package httpapi sees besides State (server.go), ForwardToLeader and
// SetConsistency (forward.go) and Admit (admission.go).
var _ httpapi.Backend = (*Server)(nil)

// httpAPI is the HTTP layer over this server.
func (s *Server) httpAPI() *httpapi.API {
	return httpapi.New(s, httpapi.Config{
		Logger:           s.log,
		SpecLimits:       s.cfg.SpecLimits,
		IdempotencyTTL:   s.cfg.IdempotencyTTL,
		WriteTimeout:     s.cfg.Logs.WriteTimeout,
		SnapshotMaxBytes: s.cfg.snapshotMaxBytes(),
	})
}

// HTTPHandler returns the /v1 API. Unknown paths under /v1 get 404 and
// known paths with another method 405, both as JSON errors.
func (s *Server) HTTPHandler() http.Handler { return s.httpAPI().Handler() }

// Apply (httpapi.Backend) commits one Raft entry on the leader.
func (s *Server) Apply(t structs.MessageType, req any) (any, uint64, error) {
	return s.apply(t, req)
}

// Now (httpapi.Backend) is the server's clock, in UTC.
func (s *Server) Now() time.Time { return s.now() }

// NodeHeartbeat (httpapi.Backend) records a heartbeat of node id now.
func (s *Server) NodeHeartbeat(id string) { s.nodes.heartbeat(id, s.now()) }

// HeartbeatTTL (httpapi.Backend) is how long a node may stay silent.
func (s *Server) HeartbeatTTL() time.Duration { return s.nodes.cfg.HeartbeatTTL }

// LogStore (httpapi.Backend) is the log store (Logs, in server.go, is the
// same store with its concrete type).
func (s *Server) LogStore() httpapi.LogStore { return httpLogStore{s.logs} }

// PublishLogs (httpapi.Backend) copies appended lines to NATS.
func (s *Server) PublishLogs(entries []*api.LogEntry) { s.publishLogs(entries) }

// httpLogStore is the LogStore as httpapi.LogStore: Subscribe returns the
// interface (nil on error, never a typed nil).
type httpLogStore struct{ *LogStore }

func (l httpLogStore) Subscribe(jobIDs []string) (httpapi.LogSubscription, error) {
	sub, err := l.LogStore.Subscribe(jobIDs)
	if err != nil {
		return nil, err
	}
	return sub, nil
}

// SchedulerConfig (httpapi.Backend) is the configuration in force.
func (s *Server) SchedulerConfig(stored *structs.SchedulerConfig) structs.SchedulerConfig {
	return s.sched.effective(stored)
}

// Feed (httpapi.Backend) is the WebSocket feed startLive runs.
func (s *Server) Feed() *httpapi.Feed { return s.live.hub }

// Handlers (httpapi.Backend) are the route handlers still in this package.
func (s *Server) Handlers() httpapi.ServerHandlers {
	return httpapi.ServerHandlers{
		StatusLeader:      s.handleStatusLeader,
		StatusReady:       s.handleStatusReady, // readiness.go
		StatusPeers:       s.handleStatusPeers,
		AgentMembers:      s.handleAgentMembers,
		AgentLeave:        s.handleAgentLeave,
		AgentGossip:       s.handleAgentGossip,
		RaftConfiguration: s.handleRaftConfiguration,
		RaftRemovePeer:    s.handleRaftRemovePeer,
		SnapshotSave:      s.handleSnapshotSave,
		SnapshotRestore:   s.handleSnapshotRestore,
		UICluster:         s.handleUICluster,
		Schedule:          s.handleSchedule,
		Metrics:           s.handleMetrics,
	}
}
