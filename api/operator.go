package api

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
)

// RaftServer is one peer of the Raft configuration.
type RaftServer struct {
	ID      string `json:"id"`
	Node    string `json:"node"`
	Address string `json:"address"`
	Leader  bool   `json:"leader"`
	Voter   bool   `json:"voter"`
}

// RaftConfiguration is the cluster's Raft configuration.
type RaftConfiguration struct {
	Index   uint64        `json:"index"`
	Servers []*RaftServer `json:"servers"`
}

// RaftConfiguration reads the Raft configuration from the leader (or, with
// q.AllowStale, from the server the client talks to).
func (c *Client) RaftConfiguration(ctx context.Context, q *QueryOptions) (*RaftConfiguration, error) {
	var out RaftConfiguration
	if _, err := c.get(ctx, "/v1/operator/raft/configuration", q, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// RemoveRaftPeer removes a server (by its Raft ID, the server's node name)
// from the Raft configuration: for a server that failed and will not come
// back. 404 when no peer has that ID.
func (c *Client) RemoveRaftPeer(ctx context.Context, id string) error {
	resp, err := c.do(ctx, http.MethodDelete, "/v1/operator/raft/peer", &QueryOptions{Params: map[string]string{"id": id}}, nil, nil)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.Body.Close()
}

// SaveSnapshot streams a snapshot of the whole cluster state into w and
// returns the Raft index it reflects.
func (c *Client) SaveSnapshot(ctx context.Context, w io.Writer) (uint64, error) {
	resp, err := c.do(ctx, http.MethodGet, "/v1/operator/snapshot", nil, nil, nil)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(w, resp.Body); err != nil {
		return 0, err
	}
	return metaOf(resp).LastIndex, nil
}

// SnapshotRestoreResult is what a restore answers.
type SnapshotRestoreResult struct {
	// Index is the Raft index of the restore entry.
	Index uint64 `json:"index"`
	// SnapshotIndex and SnapshotServer describe the snapshot restored.
	SnapshotIndex  uint64 `json:"snapshot_index"`
	SnapshotServer string `json:"snapshot_server"`
}

// RestoreSnapshot replaces the whole cluster state with a snapshot saved by
// SaveSnapshot.
func (c *Client) RestoreSnapshot(ctx context.Context, r io.Reader) (*SnapshotRestoreResult, error) {
	hdr := http.Header{}
	hdr.Set("Content-Type", "application/octet-stream")
	var out SnapshotRestoreResult
	resp, err := c.do(ctx, http.MethodPut, "/v1/operator/snapshot", nil, r, hdr)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if err := decodeJSON(resp.Body, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

func decodeJSON(r io.Reader, out any) error {
	return json.NewDecoder(r).Decode(out)
}
