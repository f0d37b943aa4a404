package httpapi

import (
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/ciplat/ciplat/api"
	"github.com/ciplat/ciplat/fsm/state"
	"github.com/ciplat/ciplat/fsm/structs"
	"github.com/ciplat/ciplat/jobspec"
)

// Backend is all the HTTP layer knows of the server. Package server
// implements it; tests may implement it with a stub.
//
// Concurrency: every method may be called from many request goroutines at
// once. State returns the live go-memdb store: its reads are lock-free
// snapshots (a blocking query re-reads after a watch fires), so handlers
// never hold a lock of the server. Apply blocks until the entry is committed
// and applied to this server's FSM (or fails); it is only called by write
// routes, which the middleware runs on the leader. ForwardToLeader may block
// until a leader is known (bounded by the server's -forward-wait) and copies
// a forwarded answer to w; it returns when the answer is written.
type Backend interface {
	// State is the replicated state store. A snapshot restore swaps it:
	// call State for each read, do not keep the store.
	State() *state.StateStore
	// Apply commits one Raft entry of type t and returns the FSM's response
	// and the entry's index.
	Apply(t structs.MessageType, req any) (any, uint64, error)
	// Now is the server's clock (UTC), for write timestamps.
	Now() time.Time
	// ForwardToLeader answers a write, or a read without ?stale, on a
	// follower: it proxies r to the leader (or writes 503) and returns true.
	// On the leader with its duties running it returns false: the route is
	// answered here.
	ForwardToLeader(w http.ResponseWriter, r *http.Request, rt Route) bool
	// SetConsistency writes how current a locally answered read is
	// (X-Ciplat-Last-Contact, X-Ciplat-Known-Leader).
	SetConsistency(w http.ResponseWriter)
	// Admit is the scheduler's backpressure on submits: nil, or a 429
	// (with Retry-After set on w) when the eval broker is full or too many
	// evaluations wait. It reads the broker's counters, takes no lock.
	Admit(w http.ResponseWriter) error
	// NodeHeartbeat records that the ready node id heartbeated now (in the
	// leader's memory; nothing is written to Raft).
	NodeHeartbeat(id string)
	// HeartbeatTTL is how long the leader waits before it marks a silent
	// node down.
	HeartbeatTTL() time.Duration
	// SchedulerConfig is the scheduler configuration in force given the
	// stored one (nil: never set): stored over the agent's defaults.
	SchedulerConfig(stored *structs.SchedulerConfig) structs.SchedulerConfig
	// LogStore is the server's store of job log lines.
	LogStore() LogStore
	// PublishLogs copies log lines just appended to the event bus (a
	// core NATS publish: buffered, not acknowledged), when the server has
	// one; a failed publish is only logged.
	PublishLogs(entries []*api.LogEntry)
	// Feed is the server's WebSocket feed; the server creates it and runs
	// it for its whole life (Feed.Run).
	Feed() *Feed
	// Handlers are the handlers still implemented in package server.
	Handlers() ServerHandlers
}

// ServerHandlers are the routes' handlers that still live in package
// server: they answer about the server itself (Raft, serf, NATS,
// snapshots, readiness, metrics) or run its scheduler (the dry run). The
// route table (routes.go) lists them with the others, so every route is
// served through the same middleware chain; each may move here behind a
// Backend method later.
type ServerHandlers struct {
	StatusLeader, StatusReady, StatusPeers HandlerFunc
	AgentMembers, AgentLeave, AgentGossip  HandlerFunc
	RaftConfiguration, RaftRemovePeer      HandlerFunc
	SnapshotSave, SnapshotRestore          HandlerFunc
	UICluster, Schedule, Metrics           HandlerFunc
}

// LogStore is the part of the server's log store (server.LogStore) the
// HTTP layer uses: lines are appended by POST /v1/client/logs and read by
// the log routes. All methods are safe for concurrent use.
type LogStore interface {
	// Append stores entries of jobID in order and wakes its followers;
	// entries past the job's byte cap are dropped (the first replaced by a
	// marker line) and counted in dropped.
	Append(jobID string, entries []*api.LogEntry) (dropped int, err error)
	// CopyAfter writes jobID's NDJSON lines after Seq after to w through
	// buf and returns the newest Seq written.
	CopyAfter(w io.Writer, buf []byte, jobID string, after uint64) (uint64, error)
	// ScanAfter calls fn for each of jobID's entries after Seq after.
	ScanAfter(jobID string, after uint64, fn func(e *api.LogEntry, raw []byte) error) (uint64, error)
	// TailAfter is the Seq after which the last n entries of jobID that
	// match accepts (all when match is nil) begin.
	TailAfter(jobID string, n int, match func(*api.LogEntry) bool) (uint64, error)
	// Subscribe wakes the caller when any of jobIDs gets lines.
	Subscribe(jobIDs []string) (LogSubscription, error)
}

// LogSubscription is a follow's wake-up: C gets a value when subscribed
// jobs got lines, Take returns the indexes (into the subscribed IDs) of
// those jobs. One goroutine uses it; Close ends it.
type LogSubscription interface {
	C() <-chan struct{}
	Take() []int
	Close()
}

// Config is the server configuration the HTTP layer reads.
type Config struct {
	// Logger logs what a handler cannot answer to its client (a stream
	// that failed mid-way).
	Logger *slog.Logger
	// SpecLimits bound a submitted spec; SpecBytes (-limit-spec-bytes) also
	// caps the body of the routes that take one.
	SpecLimits jobspec.Limits
	// WriteTimeout bounds each write of a streamed answer
	// (-log-write-timeout; see DeadlineWriter).
	WriteTimeout time.Duration
	// IdempotencyTTL is how long a submit's Idempotency-Key holds
	// (-idempotency-ttl).
	IdempotencyTTL time.Duration
	// SnapshotMaxBytes caps a snapshot restore's body.
	SnapshotMaxBytes int64
	// LoopbackBind says the agent's HTTP listener is bound to a loopback
	// address: requests whose Host is not a loopback name or one of
	// OwnAddrs are refused (DNS rebinding; browser.go).
	LoopbackBind bool
	// OwnAddrs are the agent's HTTP addresses, host or host:port (the
	// listener's, -http-addr as given, the advertised one): accepted as
	// Host on a loopback bind, and as the Origin of a browser's write
	// besides the request's own Host.
	OwnAddrs []string
}

// API is the HTTP layer of one server.
type API struct {
	b   Backend
	cfg Config
	log *slog.Logger
}

// New returns the HTTP layer over b.
func New(b Backend, cfg Config) *API {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &API{b: b, cfg: cfg, log: log}
}
