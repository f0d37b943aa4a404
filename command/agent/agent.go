// Package agent wires a ciplat agent from its configuration: the server
// (Raft, scheduler, HTTP API), the client (drivers, allocation runners) and
// the web UI. It is the only part of command/ that imports beyond api.
package agent

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/ciplat/ciplat/api"
	"github.com/ciplat/ciplat/client"
	"github.com/ciplat/ciplat/gossip"
	"github.com/ciplat/ciplat/server"
	"github.com/ciplat/ciplat/server/broker"
	"github.com/ciplat/ciplat/ui"
)

// Agent is a running agent.
//
// Lifecycle: New starts everything; Shutdown stops the client (destroying
// its workers), the HTTP server and the server, once. Safe for concurrent use.
type Agent struct {
	cfg    *Config
	log    *slog.Logger
	tmpDir string

	server   *server.Server
	client   *client.Client
	listener net.Listener
	conns    *connCapListener // listener with the -http-max-conns cap
	httpSrv  *http.Server

	clientCancel context.CancelFunc
	clientDone   chan struct{}
	// gossip is a client-only agent's own gossip member (nodes.go).
	gossip *gossip.Pool
	// closeDrivers releases driver resources after the client stopped.
	closeDrivers func()
	// dockerLine is what -dev found of Docker, for the banner (dev_docker.go).
	dockerLine string
	once       sync.Once

	// ctx ends on Shutdown; it stops -retry-join.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New starts an agent. When a part fails to start, New stops the parts
// it started and returns the error: it never returns a half-started agent
// and never waits without a bound.
func New(cfg *Config, logger *slog.Logger) (_ *Agent, err error) {
	// a is not the named result: a "return nil, err" below must leave it
	// for the deferred Shutdown.
	a := &Agent{cfg: cfg, log: logger}
	defer func() {
		if err != nil {
			a.Shutdown()
		}
	}()
	if cfg.DataDir == "" {
		dir, err := os.MkdirTemp("", "ciplat-dev-")
		if err != nil {
			return nil, fmt.Errorf("create temporary data dir: %w", err)
		}
		a.tmpDir = dir
		cfg.DataDir = dir
	}
	if cfg.NodeName == "" {
		cfg.NodeName, _ = os.Hostname()
	}
	cfg.HTTP = cfg.HTTP.withDefaults() // http_config.go
	bind := cfg.BindAddr
	if bind == "" {
		bind = "127.0.0.1"
	}
	// -bind and -advertise may name hosts (a container's hostname): resolve
	// them once, since Raft and serf gossip IPs.
	if bind, err = resolveIP(bind); err != nil {
		return nil, fmt.Errorf("-bind: %w", err)
	}
	if cfg.AdvertiseAddr != "" {
		if cfg.AdvertiseAddr, err = resolveIP(cfg.AdvertiseAddr); err != nil {
			return nil, fmt.Errorf("-advertise: %w", err)
		}
	}
	httpAddr := cfg.HTTPAddr
	if httpAddr == "" {
		httpAddr = net.JoinHostPort(bind, "4680")
	}
	ln, err := net.Listen("tcp", httpAddr)
	if err != nil {
		return nil, fmt.Errorf("HTTP API on %s: %w", httpAddr, err)
	}
	a.listener = ln
	a.conns = newConnCapListener(ln, cfg.HTTP.MaxConns) // http_conncap.go
	a.ctx, a.cancel = context.WithCancel(context.Background())

	mux := http.NewServeMux()
	if cfg.Server {
		if err := a.startServer(bind); err != nil {
			return nil, err
		}
		mux.Handle("/v1/", a.server.HTTPHandler())
	}
	mux.Handle("/ui/", ui.Handler("/ui/"))
	mux.HandleFunc("/{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/ui/", http.StatusFound)
	})
	a.httpSrv = cfg.HTTP.httpServer(mux) // http_config.go
	go func() {
		if err := a.httpSrv.Serve(a.conns); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("HTTP server stopped", "err", err)
		}
	}()

	if a.server != nil {
		if len(cfg.Join) > 0 {
			n, err := a.server.Join(cfg.Join)
			if err != nil {
				return nil, fmt.Errorf("-join: %w (use -retry-join to keep trying)", err)
			}
			logger.Info("joined the servers' serf pool", "answered", n)
		}
		if len(cfg.RetryJoin) > 0 {
			a.wg.Add(1)
			go a.retryJoin()
		}
		if a.singleServer() {
			// A single server elects itself at once; wait so the first
			// request finds a leader.
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			err := a.server.WaitForLeader(ctx)
			cancel()
			if err != nil {
				return nil, err
			}
		}
	}
	if cfg.Client {
		if err := a.startClient(); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// singleServer reports whether this agent bootstraps a one-server cluster.
func (a *Agent) singleServer() bool {
	return a.cfg.Server && (a.cfg.Dev || a.cfg.BootstrapExpect == 1)
}

// startServer starts the server on the agent's addresses.
func (a *Agent) startServer(bind string) error {
	cfg := a.cfg
	freeInDev := func(port string) string {
		if cfg.Dev {
			return "0"
		}
		return port
	}
	raftAddr := cfg.RaftAddr
	if raftAddr == "" {
		raftAddr = net.JoinHostPort(bind, freeInDev("4681"))
	}
	serfAddr := cfg.SerfAddr
	if serfAddr == "" {
		serfAddr = net.JoinHostPort(bind, freeInDev("4682"))
	}
	httpAdv, err := advertised(a.listener.Addr().String(), cfg.AdvertiseAddr)
	if err != nil {
		return fmt.Errorf("HTTP address: %w", err)
	}
	eventsCfg, err := a.eventsConfig(bind)
	if err != nil {
		return err
	}
	nodesCfg, err := a.serverNodesConfig(bind)
	if err != nil {
		return err
	}
	var raftAdv, serfAdv string
	if cfg.AdvertiseAddr != "" {
		if raftAdv, err = advertised(raftAddr, cfg.AdvertiseAddr); err != nil {
			return fmt.Errorf("raft address: %w", err)
		}
		if serfAdv, err = advertised(serfAddr, cfg.AdvertiseAddr); err != nil {
			return fmt.Errorf("serf address: %w", err)
		}
	}
	a.server, err = server.New(server.Config{
		NodeName:        cfg.NodeName,
		DataDir:         filepath.Join(cfg.DataDir, "server"),
		RaftAddr:        raftAddr,
		RaftAdvertise:   raftAdv,
		SerfAddr:        serfAddr,
		SerfAdvertise:   serfAdv,
		HTTPAddr:        httpAdv,
		HTTPListen:      a.listener.Addr().String(),
		HTTPHosts:       httpHosts(cfg.HTTPAddr),
		Bootstrap:       a.singleServer(),
		BootstrapExpect: cfg.BootstrapExpect,
		Dev:             cfg.Dev,
		Raft: server.RaftConfig{
			HeartbeatTimeout:   cfg.RaftHeartbeatTimeout,
			ElectionTimeout:    cfg.RaftElectionTimeout,
			LeaderLeaseTimeout: cfg.RaftLeaderLeaseTimeout,
			SnapshotThreshold:  cfg.RaftSnapshotThreshold,
			SnapshotInterval:   cfg.RaftSnapshotInterval,
			TrailingLogs:       cfg.RaftTrailingLogs,
		},
		DeadServerCleanup: cfg.DeadServerCleanup,
		ForwardTimeout:    cfg.HTTP.ForwardTimeout,
		MaxWSClients:      cfg.HTTP.MaxWSClients,
		HTTPConns:         a.conns.stats,
		SchedulerWorkers:  cfg.SchedulerWorkers,
		EvalBroker:        broker.Config{MaxEvals: cfg.EvalBrokerMax},
		MaxPendingEvals:   cfg.MaxPendingEvals,
		IdempotencyTTL:    cfg.IdempotencyTTL,
		SnapshotMaxBytes:  cfg.SnapshotMaxBytes,
		Logs:              cfg.Logs.server(),
		Logger:            a.log,
		Events:            eventsCfg,
		Nodes:             nodesCfg,
		SpecLimits:        cfg.SpecLimits,
	})
	if err != nil {
		return err
	}
	if !a.singleServer() && cfg.BootstrapExpect == 0 && len(cfg.Join) == 0 && len(cfg.RetryJoin) == 0 {
		a.log.Info("no -bootstrap-expect: this server waits to be added to an existing cluster (it rejoins the servers it knew, or use -join)")
	}
	return nil
}

// resolveIP returns host itself when it is an IP, else its first address
// (IPv4 preferred).
func resolveIP(host string) (string, error) {
	if net.ParseIP(host) != nil {
		return host, nil
	}
	ips, err := net.LookupIP(host)
	if err != nil || len(ips) == 0 {
		return "", fmt.Errorf("resolve %q: want an IP or a resolvable host name: %v", host, err)
	}
	for _, ip := range ips {
		if ip.To4() != nil {
			return ip.String(), nil
		}
	}
	return ips[0].String(), nil
}

// httpHosts is -http-addr as given (it may name the host, as
// "localhost:4680" or "ci.internal:4680"), which the API accepts as Host and
// Origin besides loopback names and the listener's own address.
func httpHosts(flag string) []string {
	if flag == "" {
		return nil
	}
	return []string{flag}
}

// advertised is addr with its host replaced by adv when adv is set, or addr
// itself when it names a concrete IP.
func advertised(addr, adv string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", err
	}
	if adv != "" {
		if port == "0" {
			return "", fmt.Errorf("%s: with -advertise give a fixed port, not 0", addr)
		}
		return net.JoinHostPort(adv, port), nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		return "", fmt.Errorf("%s binds every interface: set -advertise to the IP other servers reach this one on", addr)
	}
	return addr, nil
}

// retryJoin joins the -retry-join addresses, retrying with a doubling
// wait (from RetryInterval up to 30s) until one answers, RetryMax attempts
// failed, or the agent stops.
func (a *Agent) retryJoin() {
	defer a.wg.Done()
	wait := a.cfg.RetryInterval
	if wait <= 0 {
		wait = time.Second
	}
	for attempt := 1; ; attempt++ {
		n, err := a.server.Join(a.cfg.RetryJoin)
		if err == nil {
			a.log.Info("retry-join: joined the servers' serf pool", "answered", n, "attempt", attempt)
			return
		}
		if a.cfg.RetryMax > 0 && attempt >= a.cfg.RetryMax {
			a.log.Error("retry-join: giving up", "attempts", attempt, "err", err)
			return
		}
		a.log.Warn("retry-join: no server answered; retrying", "err", err, "in", wait)
		t := time.NewTimer(wait)
		select {
		case <-a.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		wait = min(2*wait, 30*time.Second)
	}
}

func (a *Agent) startClient() error {
	apiClient, err := a.clientAPI() // nodes.go: fails over across -servers
	if err != nil {
		return err
	}
	pool, err := a.clientGossip(a.gossipBind())
	if err != nil {
		return err
	}
	dataDir := filepath.Join(a.cfg.DataDir, "client")
	if a.cfg.DetectDocker {
		a.dockerLine = a.detectDocker()
	}
	reg, closeDrivers, err := buildDrivers(a.cfg, dataDir, a.log)
	if err != nil {
		return err
	}
	a.closeDrivers = closeDrivers
	c, err := client.New(client.Config{
		Name:     a.cfg.NodeName,
		DataDir:  a.cfg.DataDir,
		API:      apiClient,
		Drivers:  reg,
		Labels:   a.cfg.Labels,
		Logger:   a.log,
		Reserved: api.Resources{CPU: a.cfg.Nodes.ReserveCPU, MemoryMB: a.cfg.Nodes.ReserveMemory},
		Gossip:   pool,

		LogBufferBytes: a.cfg.Logs.ClientBufferBytes,
	})
	if err != nil {
		return err
	}
	a.client = c
	ctx, cancel := context.WithCancel(context.Background())
	a.clientCancel = cancel
	a.clientDone = make(chan struct{})
	go func() {
		defer close(a.clientDone)
		if err := c.Run(ctx); err != nil && ctx.Err() == nil {
			a.log.Error("client stopped", "err", err)
		}
	}()
	if !a.singleServer() {
		// In a cluster the client registers once there is a leader; it
		// retries by itself until then.
		return nil
	}
	select {
	case <-c.Ready():
	case <-a.clientDone:
		return errors.New("client stopped before it registered")
	case <-time.After(30 * time.Second):
		return errors.New("client could not register its node within 30s")
	}
	return nil
}

// HTTPAddr is the address the HTTP API listens on.
func (a *Agent) HTTPAddr() string { return a.listener.Addr().String() }

// Server is the agent's server, or nil.
func (a *Agent) Server() *server.Server { return a.server }

// Leave makes the agent's server leave the cluster gracefully (a leader
// hands over leadership first; the leader removes it from the voters),
// then shuts the agent down.
func (a *Agent) Leave() {
	if a.server != nil {
		if err := a.server.Leave(10 * time.Second); err != nil {
			a.log.Warn("graceful leave", "err", err)
		}
	}
	a.Shutdown()
}

// Shutdown stops the agent: every part that started, each once, whatever
// stage New reached. It is safe to call more than once, and on nil.
func (a *Agent) Shutdown() {
	if a == nil {
		return
	}
	a.once.Do(func() {
		if a.cancel != nil {
			a.cancel()
		}
		a.wg.Wait()
		if a.clientCancel != nil {
			a.clientCancel()
			<-a.clientDone
		}
		a.stopGossip()
		if a.closeDrivers != nil {
			a.closeDrivers()
		}
		if a.httpSrv != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_ = a.httpSrv.Shutdown(ctx)
			cancel()
			_ = a.httpSrv.Close()
		} else if a.listener != nil {
			_ = a.listener.Close()
		}
		if a.server != nil {
			if err := a.server.Shutdown(); err != nil {
				a.log.Warn("server shutdown", "err", err)
			}
		}
		if a.tmpDir != "" {
			_ = os.RemoveAll(a.tmpDir)
		}
	})
}

// Main runs `ciplat agent` until SIGINT or SIGTERM.
func Main(args []string, stdout, stderr io.Writer) int {
	cfg, err := ParseFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "Error: %v\n", err)
		return 2
	}
	level, _ := parseLevel(cfg.LogLevel)
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)

	a, err := New(cfg, logger)
	if err != nil {
		fmt.Fprintf(stderr, "Error: starting agent: %v\n", err)
		return 1
	}
	mode := "server"
	switch {
	case cfg.Dev:
		mode = "dev (server + client)"
	case cfg.Server && cfg.Client:
		mode = "server + client"
	case cfg.Client:
		mode = "client"
	}
	fmt.Fprintf(stdout, "==> ciplat agent started in %s mode\n", mode)
	fmt.Fprintf(stdout, "    HTTP API: http://%s\n", a.HTTPAddr())
	fmt.Fprintf(stdout, "    Web UI:   http://%s/ui/\n", a.HTTPAddr())
	if a.server != nil {
		fmt.Fprintf(stdout, "    Raft:     %s\n", a.server.RaftAddr())
		fmt.Fprintf(stdout, "    Serf:     %s\n", a.server.SerfAddr())
		if bus := a.server.EventBus(); bus != nil {
			fmt.Fprintf(stdout, "    NATS:     %s (events on domain.>, stream CIPLAT_EVENTS)\n", bus.ClientURL())
		}
	}
	if g := a.gossipLine(); g != "" {
		fmt.Fprintf(stdout, "    Gossip:   %s\n", g)
	}
	if a.dockerLine != "" {
		fmt.Fprintf(stdout, "    Docker:   %s\n", a.dockerLine)
	}
	fmt.Fprintf(stdout, "    Data dir: %s\n", cfg.DataDir)
	if f, ok := stdout.(interface{ Sync() error }); ok {
		_ = f.Sync()
	}
	var leaveCh <-chan struct{}
	if a.server != nil {
		leaveCh = a.server.LeaveRequested()
	}
	select {
	case sig := <-sigs:
		if sig == syscall.SIGTERM && a.server != nil {
			// SIGTERM is a graceful leave, as 'ciplat server leave'.
			fmt.Fprintf(stdout, "==> caught %s, leaving the cluster\n", sig)
			a.Leave()
		} else {
			fmt.Fprintf(stdout, "==> caught %s, shutting down\n", sig)
			a.Shutdown()
		}
	case <-leaveCh:
		fmt.Fprintln(stdout, "==> left the cluster on request, shutting down")
		a.Shutdown()
	}
	fmt.Fprintln(stdout, "==> agent stopped")
	return 0
}
