package agent

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"time"

	"github.com/ciplat/ciplat/api"
	"github.com/ciplat/ciplat/client"
	"github.com/ciplat/ciplat/gossip"
	"github.com/ciplat/ciplat/server"
)

// defaultGossipPort is the capacity gossip pool's port when -gossip-addr is
// not given (a variable, so a test can point it at a port it holds).
var defaultGossipPort = "4683"

// NodesConfig is the agent's share of client nodes: the capacity gossip
// pool (servers and clients), node liveness (servers) and the resources a
// client keeps back for its host.
type NodesConfig struct {
	// GossipAddr is host:port of the gossip pool (TCP and UDP); port 0
	// picks a free one. Default <bind>:4683 (a free port in -dev, or when
	// 4683 is taken: servers tell clients the address, so nothing else
	// needs configuring).
	GossipAddr string
	// Encrypt is the base64 gossip key (16, 24 or 32 bytes); every agent
	// of the cluster needs the same one.
	Encrypt string
	// HeartbeatTTL is how long the leader waits before it marks a silent
	// node down (server; default 15s).
	HeartbeatTTL time.Duration
	// ReserveCPU (millicores) and ReserveMemory (MiB) are kept back for
	// the host: the scheduler hands out the node's capacity minus them.
	ReserveCPU    int
	ReserveMemory int
}

// nodesFileConfig is NodesConfig's part of a -config file.
type nodesFileConfig struct {
	GossipAddr    *string `json:"gossip_addr"`
	Encrypt       *string `json:"encrypt"`
	HeartbeatTTL  *string `json:"heartbeat_ttl"`
	ReserveCPU    *int    `json:"reserve_cpu"`
	ReserveMemory *int    `json:"reserve_memory"`
}

func (fc *nodesFileConfig) apply(path string, c *NodesConfig) error {
	if fc.GossipAddr != nil {
		c.GossipAddr = *fc.GossipAddr
	}
	if fc.Encrypt != nil {
		c.Encrypt = *fc.Encrypt
	}
	if fc.HeartbeatTTL != nil {
		d, err := time.ParseDuration(*fc.HeartbeatTTL)
		if err != nil || d <= 0 {
			return fmt.Errorf("-config %s: heartbeat_ttl %q: want a duration such as \"15s\"", path, *fc.HeartbeatTTL)
		}
		c.HeartbeatTTL = d
	}
	if fc.ReserveCPU != nil {
		c.ReserveCPU = *fc.ReserveCPU
	}
	if fc.ReserveMemory != nil {
		c.ReserveMemory = *fc.ReserveMemory
	}
	return nil
}

func registerNodeFlags(fs *flag.FlagSet, c *NodesConfig) {
	fs.StringVar(&c.GossipAddr, "gossip-addr", c.GossipAddr, "capacity gossip pool address, TCP and UDP (default <bind>:4683; port 0 picks a free port)")
	fs.StringVar(&c.Encrypt, "encrypt", c.Encrypt, "base64 key (16, 24 or 32 bytes) encrypting the gossip pools; the same on every agent (make one: head -c 32 /dev/urandom | base64)")
	fs.DurationVar(&c.HeartbeatTTL, "heartbeat-ttl", c.HeartbeatTTL, "server: mark a node down after this long without a heartbeat or gossip (default 15s)")
	fs.IntVar(&c.ReserveCPU, "reserve-cpu", c.ReserveCPU, "client: CPU (millicores) kept back for the host")
	fs.IntVar(&c.ReserveMemory, "reserve-memory", c.ReserveMemory, "client: memory (MiB) kept back for the host")
}

// validate checks the node flags once parsed.
func (c *NodesConfig) validate() error {
	if c.Encrypt != "" {
		if _, err := gossip.ParseKey(c.Encrypt); err != nil {
			return fmt.Errorf("-encrypt: %w", err)
		}
	}
	if c.GossipAddr != "" {
		if _, _, err := net.SplitHostPort(c.GossipAddr); err != nil {
			return fmt.Errorf("invalid -gossip-addr %q: want host:port", c.GossipAddr)
		}
	}
	if c.HeartbeatTTL < 0 {
		return fmt.Errorf("invalid -heartbeat-ttl %s: want a positive duration such as 15s", c.HeartbeatTTL)
	}
	if c.ReserveCPU < 0 || c.ReserveMemory < 0 {
		return fmt.Errorf("-reserve-cpu and -reserve-memory must not be negative (got %d, %d)", c.ReserveCPU, c.ReserveMemory)
	}
	return nil
}

// gossipBind is the IP the gossip member binds when -gossip-addr gives none.
func (a *Agent) gossipBind() string {
	b := a.cfg.BindAddr
	if b == "" {
		b = "127.0.0.1"
	}
	if ip, err := resolveIP(b); err == nil {
		return ip
	}
	return b
}

// gossipKey is the decoded -encrypt key, or nil.
func (a *Agent) gossipKey() []byte {
	if a.cfg.Nodes.Encrypt == "" {
		return nil
	}
	k, _ := gossip.ParseKey(a.cfg.Nodes.Encrypt) // validated by ParseFlags
	return k
}

// gossipAddrs are the gossip bind and advertise addresses, and whether the
// bind address is the default (which may fall back to a free port).
func (a *Agent) gossipAddrs(bind string) (addr, adv string, isDefault bool, err error) {
	addr = a.cfg.Nodes.GossipAddr
	if addr == "" {
		isDefault = true
		port := defaultGossipPort
		if a.cfg.Dev {
			port = "0"
		}
		addr = net.JoinHostPort(bind, port)
	}
	if a.cfg.AdvertiseAddr != "" {
		if adv, err = advertised(addr, a.cfg.AdvertiseAddr); err != nil {
			return "", "", false, fmt.Errorf("gossip address: %w", err)
		}
	}
	return addr, adv, isDefault, nil
}

// serverNodesConfig is the server's NodesConfig.
func (a *Agent) serverNodesConfig(bind string) (server.NodesConfig, error) {
	addr, adv, isDefault, err := a.gossipAddrs(bind)
	if err != nil {
		return server.NodesConfig{}, err
	}
	return server.NodesConfig{
		GossipAddr: addr,
		// The default port, when taken as the member binds, is traded
		// for a free one (servers tell clients the address).
		GossipAddrFallback: isDefault && adv == "",
		GossipAdvertise:    adv,
		GossipKey:          a.gossipKey(),
		HeartbeatTTL:       a.cfg.Nodes.HeartbeatTTL,
	}, nil
}

// clientAPI is the API client of the agent's client: failing over across
// -servers, or this agent's own HTTP API when it is also a server.
func (a *Agent) clientAPI() (*api.Client, error) {
	if len(a.cfg.Servers) > 0 {
		return client.NewAPIClient(a.cfg.Servers)
	}
	return api.NewClient(&api.Config{Address: "http://" + a.listener.Addr().String()})
}

// clientGossip is the gossip member the agent's client publishes through:
// the server's when the agent runs one, else a client member of its own
// (joined through the servers by the client itself), which Shutdown leaves.
func (a *Agent) clientGossip(bind string) (client.GossipPool, error) {
	if a.server != nil {
		return a.server.GossipPool(), nil
	}
	addr, adv, isDefault, err := a.gossipAddrs(bind)
	if err != nil {
		return nil, err
	}
	p, err := gossip.New(gossip.Config{
		Name:          gossip.NewName("client-" + a.cfg.NodeName),
		BindAddr:      addr,
		BindFallback:  isDefault && adv == "",
		AdvertiseAddr: adv,
		Role:          gossip.RoleClient,
		SecretKey:     a.gossipKey(),
		Local:         a.cfg.Dev,
		Logger:        a.log,
	})
	if err != nil {
		return nil, fmt.Errorf("capacity gossip: %w", err)
	}
	a.gossip = p
	return p, nil
}

// stopGossip leaves and stops the client's own gossip member, if any: the
// leader marks the node down at once, as its client stopped.
func (a *Agent) stopGossip() {
	if a.gossip == nil {
		return
	}
	if err := a.gossip.Leave(2 * time.Second); err != nil && !errors.Is(err, net.ErrClosed) {
		a.log.Debug("leaving the gossip pool", "err", err)
	}
	_ = a.gossip.Shutdown()
}

// gossipLine is the banner line with the gossip address, or "".
func (a *Agent) gossipLine() string {
	switch {
	case a.server != nil:
		return a.server.GossipAddr()
	case a.gossip != nil:
		return a.gossip.Addr()
	}
	return ""
}
