package events

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
)

// startAttempts bounds how often the embedded server is started again on
// another port after a port it was free to move off was taken by another
// process between choosing it and binding it.
const startAttempts = 5

// ListenError is a listener the embedded NATS server could not open.
type ListenError struct {
	// Listener is "client" (Config.Addr) or "route" (Config.ClusterAddr).
	Listener string
	// Addr is the address it tried.
	Addr string
	// Msg is nats-server's message.
	Msg string
}

func (e *ListenError) Error() string {
	flag := "-nats-addr"
	if e.Listener == "route" {
		flag = "-nats-cluster-addr"
	}
	return fmt.Sprintf("embedded NATS: cannot listen for %s connections on %s (%s): %s", e.Listener, e.Addr, flag, e.Msg)
}

// InUse reports whether another process holds the address.
func (e *ListenError) InUse() bool { return strings.Contains(e.Msg, syscall.EADDRINUSE.Error()) }

// startEmbedded runs a NATS server with JetStream in this process and
// returns it with a copy of the options it started with. A port it may
// move off (Config.AddrFallback, Config.ClusterAddrFallback, or a route
// port 0 it chose itself) that turns out to be taken when the server
// binds it is replaced by a free one and the server started again: the
// addresses it advertises are always the ones it bound.
func startEmbedded(cfg Config, log *slog.Logger) (*natsserver.Server, *natsserver.Options, error) {
	if cfg.StoreDir == "" {
		return nil, nil, errors.New("embedded NATS: a JetStream store dir is required")
	}
	host, port, err := splitAddr(cfg.Addr)
	if err != nil {
		return nil, nil, fmt.Errorf("-nats-addr %q: %w", cfg.Addr, err)
	}
	var ch string
	var cp int
	pickRoutePort := false
	if cfg.ClusterAddr != "" {
		if ch, cp, err = splitAddr(cfg.ClusterAddr); err != nil {
			return nil, nil, fmt.Errorf("NATS cluster address %q: %w", cfg.ClusterAddr, err)
		}
		pickRoutePort = cp == natsserver.RANDOM_PORT
	}
	for attempt := 1; ; attempt++ {
		if pickRoutePort {
			// The route to itself below needs the port before the start;
			// should another process bind it first, the start fails with
			// "in use" and is tried again on another.
			if cp, err = freePort(ch); err != nil {
				return nil, nil, fmt.Errorf("NATS cluster address %q: %w", cfg.ClusterAddr, err)
			}
		}
		opts, err := embeddedOptions(cfg, host, port, ch, cp)
		if err != nil {
			return nil, nil, err
		}
		base := opts.Clone()
		ns, err := runEmbedded(opts, cfg.ReadyTimeout, log)
		if err == nil {
			return ns, base, nil
		}
		var le *ListenError
		if !errors.As(err, &le) || !le.InUse() || attempt == startAttempts {
			return nil, nil, err
		}
		switch {
		case le.Listener == "client" && cfg.AddrFallback && port != natsserver.RANDOM_PORT:
			log.Warn("the NATS client port is in use; the embedded NATS server takes a free one (set -nats-addr to choose)", "addr", le.Addr)
			port = natsserver.RANDOM_PORT
		case le.Listener == "route" && (pickRoutePort || cfg.ClusterAddrFallback):
			log.Warn("the NATS cluster port is in use; the embedded NATS server takes a free one (gossiped in serf)", "addr", le.Addr)
			pickRoutePort = true
		default:
			return nil, nil, err
		}
	}
}

// embeddedOptions are the embedded server's options for the given client
// and route host and port (no cluster when ch is "").
func embeddedOptions(cfg Config, host string, port int, ch string, cp int) (*natsserver.Options, error) {
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
	if cfg.ClusterAddr == "" {
		return opts, nil
	}
	opts.Cluster = natsserver.ClusterOpts{Name: cfg.ClusterName, Host: ch, Port: cp}
	// JetStream runs clustered only when routes are configured at start:
	// a route to this server itself (nats-server skips it) makes that so
	// before serf has found the others; their routes come with SetRoutes.
	self := "nats-route://" + net.JoinHostPort(dialHost(ch), strconv.Itoa(cp))
	for _, r := range append([]string{self}, cfg.Routes...) {
		u, err := url.Parse(r)
		if err != nil {
			return nil, fmt.Errorf("NATS route %q: %w", r, err)
		}
		opts.Routes = append(opts.Routes, u)
	}
	return opts, nil
}

// runEmbedded starts a NATS server with opts and waits, at most timeout,
// until it listens. A listener nats-server could not open ends the wait
// at once with a *ListenError (nats-server itself would carry on without
// it); the server is then shut down, its other listeners closed.
func runEmbedded(opts *natsserver.Options, timeout time.Duration, log *slog.Logger) (*natsserver.Server, error) {
	ns, err := natsserver.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded NATS: %w", err)
	}
	nl := &natsLogger{log: log, fatal: make(chan string, 1)}
	ns.SetLoggerV2(nl, false, false, false)
	ns.Start()
	stop := func() {
		ns.Shutdown()
		ns.WaitForShutdown()
	}
	deadline := time.Now().Add(timeout)
	for {
		select {
		case msg := <-nl.fatal:
			stop()
			switch {
			case strings.Contains(msg, "router port"):
				return nil, &ListenError{Listener: "route", Addr: net.JoinHostPort(opts.Cluster.Host, strconv.Itoa(opts.Cluster.Port)), Msg: msg}
			case strings.Contains(msg, "listening on port"):
				return nil, &ListenError{Listener: "client", Addr: net.JoinHostPort(opts.Host, strconv.Itoa(opts.Port)), Msg: msg}
			}
			return nil, fmt.Errorf("embedded NATS: %s", msg)
		default:
		}
		if ns.ReadyForConnections(50 * time.Millisecond) {
			return ns, nil
		}
		if time.Now().After(deadline) {
			stop()
			return nil, fmt.Errorf("embedded NATS on %s did not become ready in %s (set -nats-addr, -nats-cluster-addr)",
				net.JoinHostPort(opts.Host, strconv.Itoa(opts.Port)), timeout)
		}
	}
}

// freePort returns a TCP port free on host now.
func freePort(host string) (int, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
