package api

import (
	"context"
	"net/http"
	"net/url"
)

// The calls below are what client agents use to talk to servers
// (/v1/client/...). Tools rarely need them.

// RegisterNode adds or refreshes a node's record (capacity, drivers,
// attributes) and returns it as committed.
func (c *Client) RegisterNode(ctx context.Context, n *Node) (*Node, error) {
	var out Node
	if err := c.send(ctx, http.MethodPost, "/v1/client/nodes", n, &out, nil); err != nil {
		return nil, err
	}
	return &out, nil
}

// NodeAllocations lists a node's allocations, each with its job, as a
// blocking query: pass the last QueryMeta.LastIndex as q.WaitIndex.
func (c *Client) NodeAllocations(ctx context.Context, nodeID string, q *QueryOptions) ([]*Allocation, *QueryMeta, error) {
	var out []*Allocation
	m, err := c.get(ctx, "/v1/client/nodes/"+url.PathEscape(nodeID)+"/allocations", q, &out)
	return out, m, err
}

// UpdateAllocations reports allocation and job progress; the server commits them
// through Raft in one entry.
func (c *Client) UpdateAllocations(ctx context.Context, updates []*AllocUpdate) error {
	return c.send(ctx, http.MethodPost, "/v1/client/allocations", updates, nil, nil)
}

// PushLogs ships step output lines to the servers.
func (c *Client) PushLogs(ctx context.Context, entries []*LogEntry) error {
	return c.send(ctx, http.MethodPost, "/v1/client/logs", entries, nil, nil)
}
