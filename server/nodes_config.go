package server

import (
	"time"

	"github.com/hashicorp/memberlist"
)

// NodesConfig is how servers keep track of client nodes: the capacity
// gossip pool they share with clients, and how long a node may stay
// silent before the leader declares it down. Zero values take the
// defaults noted.
type NodesConfig struct {
	// GossipAddr is host:port of this server's member of the capacity
	// gossip pool (TCP and UDP); port 0 picks a free port. Default
	// "127.0.0.1:0" (the agent's default is <bind>:4683).
	GossipAddr string
	// GossipAddrFallback binds a free port when GossipAddr's port is held
	// by another process (the agent's default port); the bound address is
	// what serf and clients are told.
	GossipAddrFallback bool
	// GossipAdvertise is the gossip address others reach this server on;
	// empty means GossipAddr.
	GossipAdvertise string
	// GossipKey encrypts the gossip pool and the servers' serf pool
	// (-encrypt); every member needs it.
	GossipKey []byte
	// GossipTune adjusts the memberlist configuration (tests shorten
	// failure detection with it).
	GossipTune func(*memberlist.Config)
	// HeartbeatTTL is how long the leader waits without a heartbeat, a
	// registration or a living gossip member before it marks a node down;
	// default 15s. Clients heartbeat every third of it.
	HeartbeatTTL time.Duration
	// MinNodeUpdateInterval is the least time between two entries the
	// leader writes for one node from gossip or heartbeats (register, down):
	// a flapping node cannot flood the log. Changes within the window are
	// coalesced: the latest wins at its end. Default 5s.
	MinNodeUpdateInterval time.Duration
}

// Defaults of NodesConfig.
const (
	DefaultHeartbeatTTL          = 15 * time.Second
	DefaultMinNodeUpdateInterval = 5 * time.Second
)

func (c *NodesConfig) setDefaults() {
	if c.GossipAddr == "" {
		c.GossipAddr = "127.0.0.1:0"
	}
	if c.HeartbeatTTL <= 0 {
		c.HeartbeatTTL = DefaultHeartbeatTTL
	}
	if c.MinNodeUpdateInterval <= 0 {
		c.MinNodeUpdateInterval = DefaultMinNodeUpdateInterval
	}
}
