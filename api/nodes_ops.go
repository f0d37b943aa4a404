package api

import (
	"context"
	"net/http"
	"net/url"
	"time"
)

// DrainOptions say how to drain a node.
type DrainOptions struct {
	// Enable starts (or changes) the drain; false ends it, and the node is
	// eligible again.
	Enable bool
	// Deadline, when positive, is how long running jobs may finish; then
	// what still runs is stopped and rescheduled elsewhere (without using
	// up retries). Zero: no deadline.
	Deadline time.Duration
}

// DrainNode starts or ends a node's drain and returns the node as committed.
// id may be a unique prefix.
func (c *Client) DrainNode(ctx context.Context, id string, o *DrainOptions) (*Node, error) {
	body := map[string]any{"enable": o != nil && o.Enable}
	if o != nil && o.Deadline > 0 {
		body["deadline"] = o.Deadline.String()
	}
	var out Node
	if err := c.send(ctx, http.MethodPost, "/v1/nodes/"+url.PathEscape(id)+"/drain", body, &out, nil); err != nil {
		return nil, err
	}
	return &out, nil
}

// SetNodeEligibility turns scheduling on a node on or off and returns the
// node as committed. id may be a unique prefix.
func (c *Client) SetNodeEligibility(ctx context.Context, id string, eligible bool) (*Node, error) {
	var out Node
	if err := c.send(ctx, http.MethodPost, "/v1/nodes/"+url.PathEscape(id)+"/eligibility",
		map[string]bool{"eligible": eligible}, &out, nil); err != nil {
		return nil, err
	}
	return &out, nil
}

// NodeHeartbeat is the servers' answer to a client's heartbeat.
type NodeHeartbeat struct {
	// Status is the node's committed status; a client told NodeStatusDown
	// registers again.
	Status string `json:"status"`
	// HeartbeatTTL is how long the leader waits for a heartbeat ("15s").
	HeartbeatTTL string `json:"heartbeat_ttl"`
}

// TTL parses HeartbeatTTL; zero when absent or invalid.
func (h *NodeHeartbeat) TTL() time.Duration {
	d, err := time.ParseDuration(h.HeartbeatTTL)
	if err != nil || d < 0 {
		return 0
	}
	return d
}

// HeartbeatNode tells the servers the node is alive. A node they do not
// know answers with a 404 *Error: register it.
func (c *Client) HeartbeatNode(ctx context.Context, nodeID string) (*NodeHeartbeat, error) {
	var out NodeHeartbeat
	if err := c.send(ctx, http.MethodPost, "/v1/client/nodes/"+url.PathEscape(nodeID)+"/heartbeat", nil, &out, nil); err != nil {
		return nil, err
	}
	return &out, nil
}

// GossipMember is a member of the capacity gossip pool.
type GossipMember struct {
	Name     string    `json:"name"`
	Addr     string    `json:"addr"`
	Status   string    `json:"status"`
	Role     string    `json:"role"`
	NodeID   string    `json:"node_id,omitempty"`
	HTTPAddr string    `json:"http_addr,omitempty"`
	Since    time.Time `json:"since,omitzero"`
}

// GossipInfo is GET /v1/agent/gossip.
type GossipInfo struct {
	// Servers are the gossip addresses of the living servers: where a
	// client joins the pool.
	Servers   []string       `json:"servers"`
	Encrypted bool           `json:"encrypted"`
	Members   []GossipMember `json:"members"`
}

// Gossip reads the capacity gossip pool as the agent's server sees it.
func (c *Client) Gossip(ctx context.Context) (*GossipInfo, error) {
	var out GossipInfo
	if _, err := c.get(ctx, "/v1/agent/gossip", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
