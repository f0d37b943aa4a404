package client

import (
	"context"
	"math/rand/v2"
	"time"

	"github.com/ciplat/ciplat/api"
)

// defaultHeartbeatInterval is how often a client heartbeats until the
// servers tell it their TTL (then every third of it).
const defaultHeartbeatInterval = 5 * time.Second

// heartbeatLoop tells the servers the node is alive, every third of their
// heartbeat TTL (jittered), besides the gossip pool: the leader marks a node
// down only when neither has been heard of for the TTL. A servers' answer
// that the node is down (it was silent too long, or its gossip member was
// declared dead), or unknown, makes the client register again; its
// allocations that were moved meanwhile are no longer listed to it, so
// reconcile stops their workers instead of running them twice.
func (c *Client) heartbeatLoop(ctx context.Context) {
	interval := c.heartbeatInterval
	for {
		// [0.75, 1) × interval: many clients do not beat in step.
		d := interval - time.Duration(rand.Int64N(int64(interval)/4+1))
		if c.sleep(ctx, d) != nil {
			return
		}
		hb, err := c.cfg.API.HeartbeatNode(ctx, c.nodeID)
		switch {
		case err == nil && hb.Status == api.NodeStatusDown:
			c.log.Warn("the servers marked this node down; registering again")
			c.requestReregister()
		case api.IsStatus(err, 404):
			c.log.Warn("the servers do not know this node; registering again")
			c.requestReregister()
		case err != nil:
			if ctx.Err() != nil {
				return
			}
			c.log.Debug("heartbeat failed", "err", err)
		}
		if err == nil {
			if ttl := hb.TTL(); ttl > 0 {
				interval = max(ttl/3, 10*time.Millisecond)
			}
		}
	}
}

// requestReregister asks the re-fingerprint loop to register the node again.
func (c *Client) requestReregister() {
	select {
	case c.reregister <- struct{}{}:
	default:
	}
}
