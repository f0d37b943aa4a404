package client

import (
	"context"
	"maps"
	"time"

	"github.com/ciplat/ciplat/api"
	"github.com/ciplat/ciplat/gossip"
)

// GossipPool is the client's member of the capacity gossip pool
// (*gossip.Pool). The client publishes its node record through it and
// joins it through the servers; it does not own it: whoever created it
// leaves and shuts it down after Run returned. Safe for concurrent use.
type GossipPool interface {
	// SetLocal publishes the node record (broadcast when it changed).
	SetLocal(rec *gossip.NodeRecord)
	// Join contacts members at the given gossip addresses.
	Join(addrs []string) (int, error)
	// ServerAddrs lists the gossip addresses of the living servers known.
	ServerAddrs() []string
}

var _ GossipPool = (*gossip.Pool)(nil)

// gossipCheckInterval is how often the client re-publishes its record (a
// no-op when nothing changed) and checks that it still sees a server in the
// pool, joining through the servers' HTTP API when not.
const gossipCheckInterval = 5 * time.Second

// gossipLoop keeps the node's record in the gossip pool current: at once
// when the fingerprint or the load changes (kickGossip), and every
// gossipCheckInterval. A client given only -servers learns the pool's
// addresses from GET /v1/agent/gossip and joins; it does so again whenever
// it sees no living server in the pool (a partition healed, every server
// restarted on new ports).
func (c *Client) gossipLoop(ctx context.Context) {
	t := time.NewTicker(gossipCheckInterval)
	defer t.Stop()
	for {
		c.publishRecord()
		if len(c.cfg.Gossip.ServerAddrs()) == 0 {
			c.joinGossip(ctx)
		}
		select {
		case <-ctx.Done():
			return
		case <-c.gossipKick:
		case <-t.C:
		}
	}
}

// joinGossip asks the servers for the pool's addresses and joins it.
func (c *Client) joinGossip(ctx context.Context) {
	qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	info, err := c.cfg.API.Gossip(qctx)
	cancel()
	if err != nil {
		c.log.Warn("cannot learn the gossip pool's addresses from the servers; retrying", "err", err, "in", gossipCheckInterval)
		return
	}
	if len(info.Servers) == 0 {
		c.log.Warn("the servers gossip no address; retrying", "in", gossipCheckInterval)
		return
	}
	n, err := c.cfg.Gossip.Join(info.Servers)
	if err != nil {
		hint := ""
		if info.Encrypted {
			hint = " (the pool is encrypted: start the agent with the same -encrypt key as the servers)"
		}
		c.log.Warn("cannot join the gossip pool"+hint, "addrs", info.Servers, "err", err)
		return
	}
	c.log.Info("joined the gossip pool", "answered", n)
}

// kickGossip asks the gossip loop to publish the record now.
func (c *Client) kickGossip() {
	if c.cfg.Gossip == nil {
		return
	}
	select {
	case c.gossipKick <- struct{}{}:
	default:
	}
}

// setNode records the node's latest fingerprint for the gossip record.
func (c *Client) setNode(n *api.Node) {
	c.lastNode.Store(n)
	c.kickGossip()
}

// publishRecord publishes the node record built from the latest
// fingerprint and what runs now.
func (c *Client) publishRecord() {
	n := c.lastNode.Load()
	if n == nil {
		return
	}
	rec := &gossip.NodeRecord{
		NodeID:    c.nodeID,
		Name:      n.Name,
		OS:        n.Attributes["os"],
		Arch:      n.Attributes["arch"],
		Hostname:  n.Attributes["hostname"],
		Resources: gossip.Resources(n.Resources),
		Reserved:  gossip.Resources(n.Reserved),
		Labels:    maps.Clone(c.cfg.Labels),
		Drivers:   make(map[string]gossip.DriverHealth, len(n.Drivers)),
		Load:      c.load(),
	}
	for name, d := range n.Drivers {
		if d != nil {
			rec.Drivers[name] = gossip.DriverHealth{Detected: d.Detected, Healthy: d.Healthy, Reason: d.Reason}
		}
	}
	c.cfg.Gossip.SetLocal(rec)
}

// load is what the node runs now.
func (c *Client) load() gossip.Load {
	c.mu.Lock()
	defer c.mu.Unlock()
	l := gossip.Load{Allocs: len(c.runners)}
	for _, r := range c.runners {
		l.CPU += r.alloc.Resources.CPU
		l.MemoryMB += r.alloc.Resources.MemoryMB
	}
	return l
}
