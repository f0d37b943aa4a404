package server

import (
	"net"
	"net/http"
	"time"

	"github.com/ciplat/ciplat/api"
	"github.com/ciplat/ciplat/fsm/state"
	"github.com/ciplat/ciplat/fsm/structs"
	"github.com/ciplat/ciplat/server/httpapi"
)

// httpBackend is the server as the HTTP layer's Backend: the one place
// package httpapi reaches the server through, kept off Server's own API.
type httpBackend struct{ s *Server }

var _ httpapi.Backend = httpBackend{}

// httpAPI is the HTTP layer over this server.
func (s *Server) httpAPI() *httpapi.API {
	return httpapi.New(httpBackend{s}, httpapi.Config{
		Logger:           s.log,
		SpecLimits:       s.cfg.SpecLimits,
		IdempotencyTTL:   s.cfg.IdempotencyTTL,
		WriteTimeout:     s.cfg.Logs.WriteTimeout,
		SnapshotMaxBytes: s.cfg.snapshotMaxBytes(),
		LoopbackBind:     isLoopbackAddr(s.cfg.HTTPListen),
		OwnAddrs:         s.cfg.httpOwnAddrs(),
	})
}

// isLoopbackAddr reports whether hostport is bound to a loopback IP.
func isLoopbackAddr(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// httpOwnAddrs are the addresses naming this agent's HTTP API.
func (c *Config) httpOwnAddrs() []string {
	var out []string
	for _, a := range append([]string{c.HTTPAddr, c.HTTPListen}, c.HTTPHosts...) {
		if a != "" {
			out = append(out, a)
		}
	}
	return out
}

// HTTPHandler returns the /v1 API. Unknown paths under /v1 get 404 and
// known paths with another method 405, both as JSON errors.
func (s *Server) HTTPHandler() http.Handler { return s.httpAPI().Handler() }

func (b httpBackend) State() *state.StateStore { return b.s.State() }

func (b httpBackend) Apply(t structs.MessageType, req any) (any, uint64, error) {
	return b.s.apply(t, req)
}

func (b httpBackend) Now() time.Time { return b.s.now() }

// ForwardToLeader: forward.go.
func (b httpBackend) ForwardToLeader(w http.ResponseWriter, r *http.Request, rt httpapi.Route) bool {
	return b.s.forwardToLeader(w, r, rt)
}

func (b httpBackend) SetConsistency(w http.ResponseWriter) { b.s.setConsistency(w) }

// Admit: admission.go.
func (b httpBackend) Admit(w http.ResponseWriter) error { return b.s.admit(w) }

func (b httpBackend) NodeHeartbeat(id string) { b.s.nodes.heartbeat(id, b.s.now()) }

func (b httpBackend) HeartbeatTTL() time.Duration { return b.s.nodes.cfg.HeartbeatTTL }

func (b httpBackend) SchedulerConfig(stored *structs.SchedulerConfig) structs.SchedulerConfig {
	return b.s.sched.effective(stored)
}

func (b httpBackend) LogStore() httpapi.LogStore { return httpLogStore{b.s.logs} }

func (b httpBackend) PublishLogs(entries []*api.LogEntry) { b.s.publishLogs(entries) }

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

// Feed is the WebSocket feed startLive runs.
func (b httpBackend) Feed() *httpapi.Feed { return b.s.live.hub }

// Handlers are the route handlers still in this package.
func (b httpBackend) Handlers() httpapi.ServerHandlers {
	s := b.s
	return httpapi.ServerHandlers{
		StatusLeader:      s.handleStatusLeader, // readiness.go
		StatusReady:       s.handleStatusReady,  // readiness.go
		StatusPeers:       s.handleStatusPeers,
		AgentMembers:      s.handleAgentMembers,
		AgentLeave:        s.handleAgentLeave,
		AgentGossip:       s.handleAgentGossip, // gossip.go
		RaftConfiguration: s.handleRaftConfiguration,
		RaftRemovePeer:    s.handleRaftRemovePeer,
		SnapshotSave:      s.handleSnapshotSave,
		SnapshotRestore:   s.handleSnapshotRestore,
		UICluster:         s.handleUICluster, // http_ui_cluster.go
		Schedule:          s.handleSchedule,
		Metrics:           s.handleMetrics, // metrics_sched.go
	}
}
