package server

import (
	"context"
	"log/slog"
	"time"

	"github.com/ciplat/ciplat/fsm/structs"
	"github.com/ciplat/ciplat/jobspec"
	"github.com/ciplat/ciplat/server/broker"
	"github.com/ciplat/ciplat/server/events"
)

// Config is what a server agent needs. Zero values take the defaults noted.
type Config struct {
	// NodeName names this server in Raft (its server ID) and in serf;
	// default "server-1". It must be unique in the cluster.
	NodeName string
	// DataDir holds raft/ (raft-boltdb log and stable store, snapshots) and
	// logs/ (step output). Required.
	DataDir string
	// RaftAddr is the TCP address Raft binds; port 0 picks a free port.
	RaftAddr string
	// RaftAdvertise is the address other servers dial for Raft; empty means
	// RaftAddr (it must then name a concrete IP).
	RaftAdvertise string
	// SerfAddr is the address (TCP and UDP) of the servers' serf LAN pool;
	// port 0 picks a free port; default "127.0.0.1:0".
	SerfAddr string
	// SerfAdvertise is the serf address gossiped to others; empty means
	// SerfAddr.
	SerfAdvertise string
	// HTTPAddr is this server's HTTP API address as other servers reach it
	// (gossiped in serf, used to forward requests to the leader).
	HTTPAddr string
	// HTTPListen is the address the agent's HTTP listener is bound to. When
	// it is a loopback address, the API refuses requests whose Host is not
	// a loopback name or one of HTTPAddr, HTTPListen and HTTPHosts (DNS
	// rebinding; see server/httpapi/browser.go). Empty: no Host check.
	HTTPListen string
	// HTTPHosts are more names of this agent's HTTP API (-http-addr as
	// given), accepted as Host and as a browser's Origin.
	HTTPHosts []string
	// Bootstrap makes this server bootstrap a one-server cluster when its data
	// dir holds no Raft state yet (-dev, or -bootstrap-expect 1).
	Bootstrap bool
	// BootstrapExpect is how many servers must be seen in serf before Raft
	// is bootstrapped with all of them as voters. Bootstrapping happens at
	// most once, and never when the data dir already holds Raft state.
	// 0 means this server never bootstraps and waits to be added by a leader.
	BootstrapExpect int
	// Dev shortens Raft and serf timeouts for a local cluster (-dev, tests).
	Dev bool
	// Raft tunes Raft's timeouts and automatic snapshots.
	Raft RaftConfig
	// ReconcileInterval is how often the leader reconciles serf members with
	// the Raft configuration besides on every member event; default 30s.
	ReconcileInterval time.Duration
	// DeadServerCleanup removes a failed server from the Raft voters once
	// serf has seen it failed this long; 0 (default) keeps failed servers
	// until an operator removes them.
	DeadServerCleanup time.Duration
	// ForwardWait bounds how long a request waits for a leader (an election
	// in progress) before it fails with 503; default 2s.
	ForwardWait time.Duration
	// ForwardTimeout bounds a request a follower forwards to the leader,
	// from dialling to the end of the answer's headers; a blocking read
	// gets its own wait on top. Past it the client gets 504 with
	// Retry-After (forward.go); default 10s.
	ForwardTimeout time.Duration
	// MaxWSClients caps the WebSocket clients of GET /v1/ws; one more gets
	// 503 with Retry-After; default 512, negative means no cap.
	MaxWSClients int
	// HTTPConns, when set, reports the agent's HTTP listener: open
	// connections, the -http-max-conns cap (0: none) and connections
	// refused at it; GET /v1/metrics exposes them. The listener lives in
	// the agent, which sets this; it is called from any goroutine.
	HTTPConns func() ConnStats
	// SchedulerWorkers is how many scheduler goroutines the leader runs; default 2.
	SchedulerWorkers int
	// SchedulerAlgorithm is "binpack" (default) or "spread". Both it and
	// SchedulerWorkers give way to the configuration an operator stores
	// with PUT /v1/operator/scheduler.
	SchedulerAlgorithm string
	// EvalBroker bounds the leader's evaluation broker: delivery limit,
	// redelivery timeout, most evaluations held (see broker.Config).
	EvalBroker broker.Config
	// MaxPendingEvals is how many evaluations may wait in state (pending
	// or blocked) before submits get 429; default 100,000.
	MaxPendingEvals int
	// FailedEvalFollowUp is how long after an evaluation failed (delivery
	// limit) its job is tried again; default 1m.
	FailedEvalFollowUp time.Duration
	// Nodes configures the capacity gossip pool and node liveness.
	Nodes NodesConfig
	// IdempotencyTTL is how long a submit's Idempotency-Key holds its
	// pipeline (-idempotency-ttl); default structs.DefaultIdempotencyTTL
	// (24h).
	IdempotencyTTL time.Duration
	// IdempotencySweepInterval is how often the leader looks for expired
	// Idempotency-Keys to sweep through Raft; default 1m.
	IdempotencySweepInterval time.Duration
	// SnapshotMaxBytes bounds an uploaded snapshot (PUT
	// /v1/operator/snapshot; larger gets 413); default
	// DefaultSnapshotMaxBytes (1 GiB).
	SnapshotMaxBytes int64
	// Logs bounds the step log store: bytes per job, retention, stream
	// write deadlines (log_retention.go).
	Logs LogsConfig
	// Now is the clock stamped into Raft entries; nil means time.Now.
	Now func() time.Time
	// Logger receives the server's logs; nil means slog.Default().
	Logger *slog.Logger
	// Events configures the NATS event bus (an embedded NATS server with
	// JetStream, or an external cluster) that the leader publishes
	// committed events to. nil means no bus: the events table, the event
	// stream API and the WebSocket feed still work.
	Events *events.Config
	// SpecLimits bounds what a submitted pipeline spec may hold, its body
	// size included (the -limit-* agent flags); zero fields take the
	// defaults of jobspec.DefaultLimits.
	SpecLimits jobspec.Limits

	// beforeLeaderReady, when set (tests only), runs on a new leader after
	// its barrier and before its duties start, so a test can hold the
	// server in the "elected, not ready" window readiness reports.
	beforeLeaderReady func(ctx context.Context)
}

// RaftConfig holds the Raft settings an operator may tune. Zero values take
// hashicorp/raft's defaults (or the shorter -dev ones).
type RaftConfig struct {
	// HeartbeatTimeout is how long a follower waits without contact from
	// the leader before it starts an election (raft default 1s). With
	// ElectionTimeout it sets the failover time: a dead leader is replaced
	// within about 1–2 × HeartbeatTimeout plus one election round.
	HeartbeatTimeout time.Duration `json:"heartbeat_timeout,omitempty"`
	// ElectionTimeout is how long a candidate waits for votes (default 1s).
	ElectionTimeout time.Duration `json:"election_timeout,omitempty"`
	// LeaderLeaseTimeout is how long a leader stays leader without reaching
	// a quorum (default 500ms); it must not exceed HeartbeatTimeout.
	LeaderLeaseTimeout time.Duration `json:"leader_lease_timeout,omitempty"`
	// SnapshotThreshold is how many log entries since the last snapshot
	// trigger a new one (default 8192).
	SnapshotThreshold uint64 `json:"snapshot_threshold,omitempty"`
	// SnapshotInterval is how often Raft checks the threshold (default 2m;
	// raft adds up to the same again of jitter).
	SnapshotInterval time.Duration `json:"snapshot_interval,omitempty"`
	// TrailingLogs is how many entries a snapshot leaves in the log, so a
	// slightly lagging follower catches up without a snapshot (default 10240).
	TrailingLogs uint64 `json:"trailing_logs,omitempty"`
	// MaxRPCsInFlight is hashicorp/raft's NetworkTransportConfig setting;
	// 0 means 1: no pipelined replication (raft.go says why). 2 or more
	// turns pipelining on (BenchmarkCluster_Submit compares the two).
	MaxRPCsInFlight int `json:"max_rpcs_in_flight,omitempty"`
}

func (c *Config) setDefaults() {
	if c.NodeName == "" {
		c.NodeName = "server-1"
	}
	if c.RaftAddr == "" {
		c.RaftAddr = "127.0.0.1:4681"
	}
	if c.SerfAddr == "" {
		c.SerfAddr = "127.0.0.1:0"
	}
	if c.ReconcileInterval <= 0 {
		c.ReconcileInterval = 30 * time.Second
	}
	if c.ForwardWait <= 0 {
		c.ForwardWait = 2 * time.Second
	}
	if c.ForwardTimeout <= 0 {
		c.ForwardTimeout = 10 * time.Second
	}
	if c.MaxWSClients == 0 { // 0 means the default; negative means no cap
		c.MaxWSClients = 512
	}
	if c.SchedulerWorkers <= 0 {
		c.SchedulerWorkers = 2
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.IdempotencyTTL <= 0 {
		c.IdempotencyTTL = structs.DefaultIdempotencyTTL
	}
	if c.IdempotencySweepInterval <= 0 {
		c.IdempotencySweepInterval = time.Minute
	}
	c.Logs.setDefaults()
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.BootstrapExpect == 1 {
		c.Bootstrap = true
	}
	c.SpecLimits = c.SpecLimits.WithDefaults()
}

// ConnStats is what Config.HTTPConns reports of the agent's HTTP listener.
type ConnStats struct {
	Open     int64
	Max      int
	Rejected uint64
}
