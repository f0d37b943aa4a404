// Package events is ciplat's event bus: a NATS server embedded in each
// server agent (nats-server/v2, JetStream on) or an external NATS cluster,
// the CIPLAT_EVENTS stream on domain.>, and the leader's publisher that
// copies the FSM's committed events from the state store into that stream
// exactly once, in Raft index order.
package events

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// StreamName is the JetStream stream holding every domain event.
const StreamName = "CIPLAT_EVENTS"

// StreamSubjects are the subjects CIPLAT_EVENTS captures.
var StreamSubjects = []string{"domain.>"}

// LogStreamName is the JetStream stream keeping step output, one message
// per line on ciplat.logs.<job ID>.<step>, after the worker is gone.
const LogStreamName = "CIPLAT_LOGS"

// LogSubjectPrefix starts every log line's subject.
const LogSubjectPrefix = "ciplat.logs."

// DefaultLogMaxAge is how long CIPLAT_LOGS keeps lines.
const DefaultLogMaxAge = 24 * time.Hour

// Headers set on each published event besides Nats-Msg-Id.
const (
	// HeaderIndex is the Raft index of the entry that made the event.
	HeaderIndex = "Ciplat-Index"
	// HeaderSeq is the event's position among its entry's events.
	HeaderSeq = "Ciplat-Seq"
)

// Defaults of Config.
const (
	DefaultAddr       = "127.0.0.1:4222"
	DefaultMaxAge     = 7 * 24 * time.Hour
	DefaultMaxMsgs    = 1_000_000
	DefaultDuplicates = 2 * time.Minute
)

// Config says how a server agent reaches NATS.
type Config struct {
	// URL of an external NATS cluster (nats://host:4222,...). Empty means
	// embed a NATS server in this process.
	URL string
	// Addr is where the embedded server listens for clients; port 0 or -1
	// picks a free port. Default DefaultAddr.
	Addr string
	// StoreDir is the embedded server's JetStream directory. Required when
	// embedded.
	StoreDir string
	// ServerName names the embedded server (unique in a NATS cluster).
	ServerName string
	// ClusterName, ClusterAddr and Routes join the embedded servers of
	// several ciplat servers into one NATS cluster: ClusterAddr is where
	// this one listens for routes (port 0 picks one), Routes the
	// nats-route://host:port of the others. Empty ClusterAddr: no cluster.
	ClusterName string
	ClusterAddr string
	Routes      []string
	// AddrFallback and ClusterAddrFallback let the embedded server take a
	// free port when Addr (ClusterAddr) is already bound by another
	// process: the agent sets them for its default ports, never for ports
	// an operator chose. The server binds first and advertises what it
	// bound (ClientURL, ClusterURL), so two agents starting at once on
	// one host cannot both think they own the default.
	AddrFallback        bool
	ClusterAddrFallback bool
	// ReadyTimeout bounds how long the embedded server may take to listen
	// (default 15s); a listener that fails ends the wait at once.
	ReadyTimeout time.Duration

	// MaxAge and MaxMsgs bound the stream (oldest dropped first);
	// Duplicates is the window in which a re-published message ID is
	// dropped. Replicas is the streams' replication; 0 means automatic:
	// min(3, servers) for a clustered embedded server (SetClusterSize
	// tells the bus how many servers there are), else 1.
	MaxAge     time.Duration
	MaxMsgs    int64
	Duplicates time.Duration
	Replicas   int
	// LogMaxAge is how long CIPLAT_LOGS keeps step output (default 24h).
	LogMaxAge time.Duration

	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	if c.Addr == "" {
		c.Addr = DefaultAddr
	}
	if c.MaxAge <= 0 {
		c.MaxAge = DefaultMaxAge
	}
	if c.MaxMsgs == 0 {
		c.MaxMsgs = DefaultMaxMsgs
	}
	if c.Duplicates <= 0 {
		c.Duplicates = DefaultDuplicates
	}
	if c.Replicas < 0 {
		c.Replicas = 0
	}
	if c.LogMaxAge <= 0 {
		c.LogMaxAge = DefaultLogMaxAge
	}
	if c.ClusterName == "" {
		c.ClusterName = "ciplat"
	}
	if c.ReadyTimeout <= 0 {
		c.ReadyTimeout = 15 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// replicasFor is the stream replication for a NATS cluster of size
// servers (0: unknown).
func (c Config) replicasFor(size int) int {
	if c.Replicas > 0 {
		return c.Replicas
	}
	if c.URL != "" || c.ClusterAddr == "" {
		return 1
	}
	return max(1, min(3, size))
}

// StreamConfig is the CIPLAT_EVENTS configuration cfg asks for (with
// automatic replicas, for a cluster of one).
func (c Config) StreamConfig() jetstream.StreamConfig { return c.streamConfig(1) }

func (c Config) streamConfig(size int) jetstream.StreamConfig {
	c.setDefaults()
	return jetstream.StreamConfig{
		Name:        StreamName,
		Description: "ciplat domain events, one message per event, Nats-Msg-Id <raft index>-<seq>",
		Subjects:    StreamSubjects,
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		Storage:     jetstream.FileStorage,
		MaxAge:      c.MaxAge,
		MaxMsgs:     c.MaxMsgs,
		Duplicates:  c.Duplicates,
		Replicas:    c.replicasFor(size),
	}
}

// Bus is a connection to NATS (and the embedded server, when there is one).
//
// Lifecycle: Start starts the embedded server (if any) and connects;
// Close disconnects and stops the server. Safe for concurrent use.
type Bus struct {
	cfg Config
	log *slog.Logger
	ns  *natsserver.Server
	nc  *nats.Conn
	js  jetstream.JetStream

	streamMu sync.Mutex
	streamOK bool
	// replicas is the replication the streams were last created or
	// updated with (0: not yet).
	replicas int

	// natsOpts are the embedded server's options as started (cluster
	// port resolved), the base of every route reload; routesMu guards
	// routes, the route URLs now configured.
	natsOpts *natsserver.Options
	routesMu sync.Mutex
	routes   []string
	// clusterSize is how many ciplat servers share the NATS cluster
	// (SetClusterSize), for automatic replicas.
	clusterSize atomic.Int32

	closeOnce sync.Once
}

// Start embeds a NATS server (unless cfg.URL names an external one) and
// connects to it.
func Start(cfg Config) (*Bus, error) {
	cfg.setDefaults()
	b := &Bus{cfg: cfg, log: cfg.Logger.With("component", "nats")}
	opts := []nats.Option{
		nats.Name("ciplat " + cfg.ServerName),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				b.log.Warn("NATS disconnected", "err", err)
			}
		}),
	}
	url := cfg.URL
	if url == "" {
		ns, nopts, err := startEmbedded(cfg, b.log)
		if err != nil {
			return nil, err
		}
		b.ns = ns
		b.natsOpts = nopts
		b.routes = routeStrings(nopts.Routes)
		url = ns.ClientURL()
		opts = append(opts, nats.InProcessServer(ns))
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		b.Close()
		return nil, fmt.Errorf("connect to NATS at %s: %w", url, err)
	}
	b.nc = nc
	js, err := jetstream.New(nc)
	if err != nil {
		b.Close()
		return nil, fmt.Errorf("JetStream: %w", err)
	}
	b.js = js
	return b, nil
}

// dialHost is the host to dial for a listener on host: loopback for an
// unspecified address.
func dialHost(host string) string {
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		return "127.0.0.1"
	}
	return host
}

func routeStrings(us []*url.URL) []string {
	out := make([]string, 0, len(us))
	for _, u := range us {
		out = append(out, u.String())
	}
	slices.Sort(out)
	return out
}

// SetRoutes makes the embedded server's routes the given
// nats-route://host:port URLs (the other servers' cluster addresses; this
// server's own is kept and skipped by nats-server), reloading its options
// when they changed. It does nothing without an embedded clustered server.
func (b *Bus) SetRoutes(routes []string) error {
	if b.ns == nil || b.natsOpts == nil || b.cfg.ClusterAddr == "" {
		return nil
	}
	want := []string{"nats-route://" + net.JoinHostPort(dialHost(b.natsOpts.Cluster.Host), strconv.Itoa(b.natsOpts.Cluster.Port))}
	var urls []*url.URL
	for _, r := range routes {
		if !slices.Contains(want, r) {
			want = append(want, r)
		}
	}
	slices.Sort(want)
	for _, r := range want {
		u, err := url.Parse(r)
		if err != nil {
			return fmt.Errorf("NATS route %q: %w", r, err)
		}
		urls = append(urls, u)
	}
	b.routesMu.Lock()
	defer b.routesMu.Unlock()
	if slices.Equal(want, b.routes) {
		return nil
	}
	opts := b.natsOpts.Clone()
	opts.Routes = urls
	if err := b.ns.ReloadOptions(opts); err != nil {
		return fmt.Errorf("reload NATS routes: %w", err)
	}
	b.log.Info("NATS routes updated", "routes", want)
	b.routes = want
	return nil
}

// Routes returns the route URLs the embedded server is configured with.
func (b *Bus) Routes() []string {
	b.routesMu.Lock()
	defer b.routesMu.Unlock()
	return slices.Clone(b.routes)
}

// SetClusterSize tells the bus how many ciplat servers share the NATS
// cluster; with automatic replicas the streams get min(3, n) the next
// time they are created or updated (EnsureStream).
func (b *Bus) SetClusterSize(n int) { b.clusterSize.Store(int32(n)) }

// WantReplicas is the replication the streams should have now.
func (b *Bus) WantReplicas() int { return b.cfg.replicasFor(int(b.clusterSize.Load())) }

// StreamReplicas is the replication the streams were last created or
// updated with by this bus (0: not yet).
func (b *Bus) StreamReplicas() int {
	b.streamMu.Lock()
	defer b.streamMu.Unlock()
	return b.replicas
}

// splitAddr parses host:port; port 0 or -1 means a free port.
func splitAddr(addr string) (string, int, error) {
	host, ps, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(ps)
	if err != nil {
		return "", 0, fmt.Errorf("port %q is not a number", ps)
	}
	if port == 0 {
		port = natsserver.RANDOM_PORT // 0 would mean 4222 to nats-server
	}
	return host, port, nil
}

// ClientURL is where NATS clients (natscli, tools) connect: the embedded
// server's listener, or the external URL.
func (b *Bus) ClientURL() string {
	if b.ns != nil {
		return b.ns.ClientURL()
	}
	return b.cfg.URL
}

// ClusterURL is the embedded server's route URL (nats-route://host:port),
// or "" when it is not clustered.
func (b *Bus) ClusterURL() string {
	if b.ns == nil || b.cfg.ClusterAddr == "" {
		return ""
	}
	addr := b.ns.ClusterAddr()
	if addr == nil {
		return ""
	}
	return "nats-route://" + net.JoinHostPort(dialHost(addr.IP.String()), strconv.Itoa(addr.Port))
}

// Embedded is the embedded NATS server, or nil when connected to an
// external one.
func (b *Bus) Embedded() *natsserver.Server { return b.ns }

// Conn is the bus's NATS connection.
func (b *Bus) Conn() *nats.Conn { return b.nc }

// JetStream is the bus's JetStream context.
func (b *Bus) JetStream() jetstream.JetStream { return b.js }

// Config is the configuration the bus runs with (defaults filled in).
func (b *Bus) Config() Config { return b.cfg }

// EnsureStream creates CIPLAT_EVENTS and CIPLAT_LOGS, or updates them to
// the configured retention and the replicas WantReplicas says. The
// publisher calls it before its first publish, the server when the
// number of servers changes. In a NATS cluster that is still forming (no
// JetStream meta leader yet, too few servers for the replicas) it retries
// until ctx ends.
func (b *Bus) EnsureStream(ctx context.Context) (jetstream.Stream, error) {
	size := int(b.clusterSize.Load())
	cfg := b.cfg.streamConfig(size)
	var st jetstream.Stream
	var err error
	for {
		st, err = b.ensureOnce(ctx, cfg, b.cfg.logStreamConfig(size))
		if err == nil || ctx.Err() != nil {
			break
		}
		b.log.Debug("JetStream not ready for the streams; retrying", "err", err)
		t := time.NewTimer(250 * time.Millisecond)
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
	}
	if err != nil {
		return nil, err
	}
	b.streamMu.Lock()
	if !b.streamOK || b.replicas != cfg.Replicas {
		b.log.Info("JetStream stream ready", "stream", StreamName, "max_age", cfg.MaxAge,
			"max_msgs", cfg.MaxMsgs, "duplicates", cfg.Duplicates, "replicas", cfg.Replicas)
		b.streamOK = true
		b.replicas = cfg.Replicas
	}
	b.streamMu.Unlock()
	return st, nil
}

func (b *Bus) ensureOnce(ctx context.Context, ev, logs jetstream.StreamConfig) (jetstream.Stream, error) {
	st, err := b.js.CreateOrUpdateStream(ctx, ev)
	if err != nil {
		return nil, fmt.Errorf("create stream %s: %w", StreamName, err)
	}
	if _, err := b.js.CreateOrUpdateStream(ctx, logs); err != nil {
		return nil, fmt.Errorf("create stream %s: %w", LogStreamName, err)
	}
	return st, nil
}

func (c Config) logStreamConfig(size int) jetstream.StreamConfig {
	c.setDefaults()
	return jetstream.StreamConfig{
		Name:        LogStreamName,
		Description: "ciplat step output, one message per line on ciplat.logs.<job ID>.<step>",
		Subjects:    []string{LogSubjectPrefix + ">"},
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		Storage:     jetstream.FileStorage,
		MaxAge:      c.LogMaxAge,
		Replicas:    c.replicasFor(size),
	}
}

// LogSubject is the subject of a job step's output lines: step names are
// cut to subject-safe characters.
func LogSubject(jobID, step string) string {
	b := make([]byte, 0, len(step))
	for i := 0; i < len(step); i++ {
		c := step[i]
		if ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || ('0' <= c && c <= '9') || c == '-' || c == '_' {
			b = append(b, c)
		} else {
			b = append(b, '_')
		}
	}
	if len(b) == 0 {
		b = append(b, '_')
	}
	return LogSubjectPrefix + jobID + "." + string(b)
}

// PublishLog sends one log line without waiting (CIPLAT_LOGS stores it);
// a line lost while NATS is down is still in the server's log store.
func (b *Bus) PublishLog(subject string, data []byte) error {
	return b.nc.Publish(subject, data)
}

// Close disconnects and shuts the embedded server down. Safe to call more
// than once.
func (b *Bus) Close() {
	b.closeOnce.Do(func() {
		if b.nc != nil {
			b.nc.Close()
		}
		if b.ns != nil {
			b.ns.Shutdown()
			b.ns.WaitForShutdown()
		}
	})
}

// natsLogger sends the embedded server's logs to slog. nats-server
// reports a listener it could not open with Fatalf (and then carries on
// without it); fatal receives the first such message so the start fails
// at once instead of waiting for readiness that never comes.
type natsLogger struct {
	log   *slog.Logger
	fatal chan string
}

func (l *natsLogger) Noticef(f string, v ...any) { l.log.Debug(fmt.Sprintf(f, v...)) }
func (l *natsLogger) Warnf(f string, v ...any)   { l.log.Warn(fmt.Sprintf(f, v...)) }
func (l *natsLogger) Fatalf(f string, v ...any) {
	msg := fmt.Sprintf(f, v...)
	l.log.Error(msg)
	if l.fatal != nil {
		select {
		case l.fatal <- msg:
		default:
		}
	}
}
func (l *natsLogger) Errorf(f string, v ...any) { l.log.Error(fmt.Sprintf(f, v...)) }
func (l *natsLogger) Debugf(f string, v ...any) { l.log.Debug(fmt.Sprintf(f, v...)) }
func (l *natsLogger) Tracef(f string, v ...any) {}
