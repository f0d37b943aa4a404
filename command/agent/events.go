package agent

import (
	"flag"
	"fmt"
	"net"
	"time"

	"github.com/ciplat/ciplat/server/events"
)

// EventsConfig is how a server agent reaches NATS for its event bus.
type EventsConfig struct {
	// NATSAddr is where the embedded NATS server listens for clients
	// (default 127.0.0.1:4222 on -bind's IP; a free port in -dev).
	NATSAddr string
	// NATSURL connects to an external NATS cluster instead of embedding
	// one (nats://host:4222, comma-separated for several).
	NATSURL string
	// NATSClusterAddr is where the embedded NATS server listens for routes
	// from the other servers' (default <bind>:4248, a free port when taken
	// or in tests; "off" disables). Only a server that is part of a
	// multi-server cluster (-bootstrap-expect >= 2, or 0 to join one)
	// clusters its NATS: the address is gossiped in serf and every server
	// routes to the others'.
	NATSClusterAddr string
	// MaxAge, MaxMsgs and Duplicates are the CIPLAT_EVENTS stream's
	// retention and duplicate window.
	MaxAge     time.Duration
	MaxMsgs    int64
	Duplicates time.Duration
	// Replicas is the streams' replication; 0 (default) is min(3, servers)
	// with clustered embedded NATS, 1 otherwise.
	Replicas int
}

// registerEventFlags adds the event bus flags to fs.
func registerEventFlags(fs *flag.FlagSet, c *EventsConfig) {
	fs.StringVar(&c.NATSAddr, "nats-addr", c.NATSAddr, "server: address of the embedded NATS server (default 127.0.0.1:4222, a free port in -dev; port 0 picks one)")
	fs.StringVar(&c.NATSClusterAddr, "nats-cluster-addr", c.NATSClusterAddr, "server: route address of the embedded NATS server, gossiped so the servers' NATS form one cluster (default <bind>:4248, a free port when taken; port 0 picks one; off: no NATS cluster)")
	fs.StringVar(&c.NATSURL, "nats-url", c.NATSURL, "server: use this external NATS cluster (nats://host:4222,...) instead of the embedded server")
	fs.DurationVar(&c.MaxAge, "events-max-age", c.MaxAge, "server: how long the CIPLAT_EVENTS stream keeps events (default 168h)")
	fs.Int64Var(&c.MaxMsgs, "events-max-msgs", c.MaxMsgs, "server: how many events the CIPLAT_EVENTS stream keeps (default 1000000; -1 no limit)")
	fs.DurationVar(&c.Duplicates, "events-duplicate-window", c.Duplicates, "server: window in which JetStream drops a re-published event ID (default 2m)")
	fs.IntVar(&c.Replicas, "events-replicas", c.Replicas, "server: CIPLAT_EVENTS and CIPLAT_LOGS replicas (default 0: min(3, servers) when the embedded NATS servers form a cluster, else 1)")
}

// Default ports of the embedded NATS server (client, route). Variables,
// so a test can point them at a port it holds.
var (
	defaultNATSPort        = "4222"
	defaultNATSClusterPort = "4248"
)

// eventsConfig is the server's event bus configuration: embedded NATS by
// default, with JetStream in the server's data dir. A default port that
// another process holds when the embedded server binds it is traded for a
// free one (events.Config.AddrFallback): bind first, then advertise what
// was bound, never check first and bind later.
func (a *Agent) eventsConfig(bind string) (*events.Config, error) {
	c := a.cfg.Events
	addr := c.NATSAddr
	addrDefault := false
	if addr == "" && c.NATSURL == "" {
		addr = net.JoinHostPort(bind, defaultNATSPort)
		addrDefault = true
		if a.cfg.Dev {
			addr = net.JoinHostPort(bind, "-1")
		}
	}
	if c.MaxMsgs < -1 || c.MaxAge < 0 || c.Duplicates < 0 || c.Replicas < 0 {
		return nil, fmt.Errorf("-events-max-age, -events-duplicate-window, -events-max-msgs and -events-replicas must not be negative")
	}
	if c.Duplicates > 0 && c.MaxAge > 0 && c.Duplicates > c.MaxAge {
		return nil, fmt.Errorf("-events-duplicate-window %s is longer than -events-max-age %s", c.Duplicates, c.MaxAge)
	}
	clusterAddr, err := a.natsClusterAddr(bind)
	if err != nil {
		return nil, err
	}
	return &events.Config{
		URL:                 c.NATSURL,
		Addr:                addr,
		AddrFallback:        addrDefault,
		ClusterAddr:         clusterAddr,
		ClusterAddrFallback: c.NATSClusterAddr == "" && clusterAddr != "",
		ServerName:          a.cfg.NodeName,
		MaxAge:              c.MaxAge,
		MaxMsgs:             c.MaxMsgs,
		Duplicates:          c.Duplicates,
		Replicas:            c.Replicas,
		Logger:              a.log,
	}, nil
}

// natsClusterAddr is the embedded NATS server's route address, or "" when
// it does not cluster: an external NATS, a single server, or "off".
func (a *Agent) natsClusterAddr(bind string) (string, error) {
	c := a.cfg.Events
	if c.NATSURL != "" || c.NATSClusterAddr == "off" {
		return "", nil
	}
	if a.singleServer() {
		if c.NATSClusterAddr != "" {
			a.log.Warn("-nats-cluster-addr is ignored on a single server (-dev or -bootstrap-expect 1): its NATS runs standalone")
		}
		return "", nil
	}
	addr := c.NATSClusterAddr
	if addr == "" {
		// Taken by another agent on this host: the embedded server
		// falls back to a free port when it binds (ClusterAddrFallback).
		return net.JoinHostPort(bind, defaultNATSClusterPort), nil
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return "", fmt.Errorf("-nats-cluster-addr %q: want host:port: %w", addr, err)
	}
	return addr, nil
}
