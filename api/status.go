package api

import (
	"context"
	"net/http"
)

// Peers returns the Raft addresses of the cluster's voters, as the server
// the client talks to knows them (GET /v1/status/peers).
func (c *Client) Peers(ctx context.Context) ([]string, error) {
	var out []string
	_, err := c.get(ctx, "/v1/status/peers", nil, &out)
	return out, err
}

// Member is a server in the servers' serf pool (GET /v1/agent/members).
type Member struct {
	Name   string            `json:"name"`
	Addr   string            `json:"addr"`
	Status string            `json:"status"` // alive, leaving, left, failed
	Tags   map[string]string `json:"tags"`
	Leader bool              `json:"leader"`
	Voter  bool              `json:"voter"`
	// RaftState is "Leader", "Follower", "Candidate" or "None" (not a peer).
	RaftState string `json:"raft_state"`
	RaftAddr  string `json:"raft_addr"`
	HTTPAddr  string `json:"http_addr"`
	Protocol  int    `json:"protocol"`
}

// Members lists the servers the agent's serf pool knows, with their status
// and Raft role.
func (c *Client) Members(ctx context.Context) ([]*Member, error) {
	var out []*Member
	_, err := c.get(ctx, "/v1/agent/members", nil, &out)
	return out, err
}

// Leave makes the server the client talks to leave the cluster gracefully
// and stop (PUT /v1/agent/leave). It returns once the server has left.
func (c *Client) Leave(ctx context.Context) error {
	return c.send(ctx, http.MethodPut, "/v1/agent/leave", nil, nil, nil)
}

// Readiness is GET /v1/status/ready's answer.
type Readiness struct {
	Ready bool `json:"ready"`
	// Role is "leader" or "follower".
	Role string `json:"role"`
	// Leader is the leader's Raft address, "" when none is known.
	Leader string `json:"leader"`
}

// Ready asks whether the server can serve reads and writes now: the leader
// once its duties run, a follower once it hears from the leader and has
// applied what is committed. A server that is not ready answers 503: the
// *Error then says why and carries RetryAfter. Poll Ready rather than
// Leader to wait for a usable cluster.
func (c *Client) Ready(ctx context.Context) (*Readiness, error) {
	var out Readiness
	if _, err := c.get(ctx, "/v1/status/ready", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
