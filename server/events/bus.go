// Package events is ciplat's event bus: a NATS server embedded in each
// server agent (nats-server/v2, JetStream on) or an external NATS cluster,
// the CIPLAT_EVENTS stream on domain.>, and the leader's publisher that
// copies the FSM's committed events from the state store into that stream
// exactly once, in Raft index order.
package events

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"sync"
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

	// MaxAge and MaxMsgs bound the stream (oldest dropped first);
	// Duplicates is the window in which a re-published message ID is
	// dropped. Replicas is the stream's replication (1, or 3 in a cluster
	// of three or more).
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
	if c.Replicas <= 0 {
		c.Replicas = 1
	}
	if c.LogMaxAge <= 0 {
		c.LogMaxAge = DefaultLogMaxAge
	}
	if c.ClusterName == "" {
		c.ClusterName = "ciplat"
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// StreamConfig is the CIPLAT_EVENTS configuration cfg asks for.
func (c Config) StreamConfig() jetstream.StreamConfig {
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
		Replicas:    c.Replicas,
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
		ns, err := startEmbedded(cfg, b.log)
		if err != nil {
			return nil, err
		}
		b.ns = ns
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

// startEmbedded runs a NATS server with JetStream in this process.
func startEmbedded(cfg Config, log *slog.Logger) (*natsserver.Server, error) {
	if cfg.StoreDir == "" {
		return nil, errors.New("embedded NATS: a JetStream store dir is required")
	}
	host, port, err := splitAddr(cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("-nats-addr %q: %w", cfg.Addr, err)
	}
	opts := &natsserver.Options{
		ServerName: cfg.ServerName,
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   cfg.StoreDir,
		NoSigs:     true,
		// Leave the JetStream domain and accounts at their defaults: one
		// account, so natscli and every tool see the stream.
	}
	if cfg.ClusterAddr != "" {
		ch, cp, err := splitAddr(cfg.ClusterAddr)
		if err != nil {
			return nil, fmt.Errorf("NATS cluster address %q: %w", cfg.ClusterAddr, err)
		}
		opts.Cluster = natsserver.ClusterOpts{Name: cfg.ClusterName, Host: ch, Port: cp}
		for _, r := range cfg.Routes {
			u, err := url.Parse(r)
			if err != nil {
				return nil, fmt.Errorf("NATS route %q: %w", r, err)
			}
			opts.Routes = append(opts.Routes, u)
		}
	}
	ns, err := natsserver.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded NATS: %w", err)
	}
	ns.SetLoggerV2(&natsLogger{log: log}, false, false, false)
	ns.Start()
	if !ns.ReadyForConnections(15 * time.Second) {
		ns.Shutdown()
		return nil, fmt.Errorf("embedded NATS on %s did not become ready in 15s (port in use? set -nats-addr)", cfg.Addr)
	}
	return ns, nil
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
	return "nats-route://" + addr.String()
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
// the configured retention. The publisher calls it before its first
// publish.
func (b *Bus) EnsureStream(ctx context.Context) (jetstream.Stream, error) {
	cfg := b.cfg.StreamConfig()
	st, err := b.js.CreateOrUpdateStream(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("create stream %s: %w", StreamName, err)
	}
	if _, err := b.js.CreateOrUpdateStream(ctx, b.cfg.logStreamConfig()); err != nil {
		return nil, fmt.Errorf("create stream %s: %w", LogStreamName, err)
	}
	b.streamMu.Lock()
	if !b.streamOK {
		b.log.Info("JetStream stream ready", "stream", StreamName, "max_age", cfg.MaxAge,
			"max_msgs", cfg.MaxMsgs, "duplicates", cfg.Duplicates, "replicas", cfg.Replicas)
		b.streamOK = true
	}
	b.streamMu.Unlock()
	return st, nil
}

func (c Config) logStreamConfig() jetstream.StreamConfig {
	c.setDefaults()
	return jetstream.StreamConfig{
		Name:        LogStreamName,
		Description: "ciplat step output, one message per line on ciplat.logs.<job ID>.<step>",
		Subjects:    []string{LogSubjectPrefix + ">"},
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		Storage:     jetstream.FileStorage,
		MaxAge:      c.LogMaxAge,
		Replicas:    c.Replicas,
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

// natsLogger sends the embedded server's logs to slog.
type natsLogger struct{ log *slog.Logger }

func (l *natsLogger) Noticef(f string, v ...any) { l.log.Debug(fmt.Sprintf(f, v...)) }
func (l *natsLogger) Warnf(f string, v ...any)   { l.log.Warn(fmt.Sprintf(f, v...)) }
func (l *natsLogger) Fatalf(f string, v ...any)  { l.log.Error(fmt.Sprintf(f, v...)) }
func (l *natsLogger) Errorf(f string, v ...any)  { l.log.Error(fmt.Sprintf(f, v...)) }
func (l *natsLogger) Debugf(f string, v ...any)  { l.log.Debug(fmt.Sprintf(f, v...)) }
func (l *natsLogger) Tracef(f string, v ...any)  {}
