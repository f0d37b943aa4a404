package api

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Worker states.
const (
	WorkerCreating   = "creating"
	WorkerRunning    = "running"
	WorkerTerminated = "terminated"
	WorkerFailed     = "failed"
)

// Worker is the ephemeral worker (container, process group, ...) that runs
// one attempt of a job: one per allocation, with the allocation's ID.
type Worker struct {
	ID         string `json:"id"`
	Driver     string `json:"driver,omitempty"`
	HandleID   string `json:"handle_id,omitempty"`
	NodeID     string `json:"node_id"`
	NodeName   string `json:"node_name,omitempty"`
	JobID      string `json:"job_id"`
	JobName    string `json:"job_name,omitempty"`
	PipelineID string `json:"pipeline_id"`
	Attempt    int    `json:"attempt"`
	Image      string `json:"image,omitempty"`
	// State is creating, running, terminated or failed.
	State  string `json:"state"`
	Reason string `json:"reason,omitempty"`
	// Live is true while the worker holds its node's resources.
	Live          bool      `json:"live"`
	DesiredStatus string    `json:"desired_status"`
	ClientStatus  string    `json:"client_status"`
	StopRequested bool      `json:"stop_requested,omitempty"`
	CreatedAt     time.Time `json:"created_at"`
	StartedAt     time.Time `json:"started_at,omitzero"`
	EndedAt       time.Time `json:"ended_at,omitzero"`
	// Age is how long the worker has existed (until it ended), as the
	// server computed it ("1m30s").
	Age string `json:"age"`
}

// WorkerListOptions filter Workers.
type WorkerListOptions struct {
	// All includes workers that ended.
	All bool
	// PerPage, when positive, reads the list in pages of at most this
	// many workers (the server allows 1 to 1000).
	PerPage int
	// NextToken starts WorkersPage at the page a previous call's
	// token names.
	NextToken string
}

// Workers lists the live workers of every node (all workers with
// o.All), newest first. With o.PerPage it reads page after page until the
// last; a worker created meanwhile may be missing (it sorts before the
// pages already read), none is listed twice.
func (c *Client) Workers(ctx context.Context, o *WorkerListOptions) ([]*Worker, error) {
	var opts WorkerListOptions
	if o != nil {
		opts = *o
	}
	var all []*Worker
	for {
		page, next, err := c.WorkersPage(ctx, &opts)
		if err != nil {
			return nil, err
		}
		all = append(all, page...)
		if next == "" || opts.PerPage <= 0 {
			return all, nil
		}
		opts.NextToken = next
	}
}

// WorkersPage reads one page of Workers and returns the token of
// the next page, empty on the last.
func (c *Client) WorkersPage(ctx context.Context, o *WorkerListOptions) ([]*Worker, string, error) {
	q := &QueryOptions{Params: map[string]string{}}
	if o != nil {
		if o.All {
			q.Params["all"] = "true"
		}
		if o.PerPage > 0 {
			q.Params["per_page"] = strconv.Itoa(o.PerPage)
		}
		if o.NextToken != "" {
			q.Params["next_token"] = o.NextToken
		}
	}
	var out []*Worker
	meta, err := c.get(ctx, "/v1/workers", q, &out)
	if err != nil {
		return nil, "", err
	}
	return out, meta.NextToken, nil
}

// Worker reads one worker; id may be a unique prefix.
func (c *Client) Worker(ctx context.Context, id string) (*Worker, error) {
	var out Worker
	if _, err := c.get(ctx, "/v1/workers/"+url.PathEscape(id), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// StopWorker terminates a worker (idempotent) and returns it as committed:
// its job is retried or fails per its retry policy.
func (c *Client) StopWorker(ctx context.Context, id string) (*Worker, error) {
	var out Worker
	if err := c.send(ctx, http.MethodDelete, "/v1/workers/"+url.PathEscape(id), nil, &out, nil); err != nil {
		return nil, err
	}
	return &out, nil
}

// WorkerLogs streams the logs of the job attempt a worker ran, calling fn
// for each entry.
func (c *Client) WorkerLogs(ctx context.Context, id string, o *LogOptions, fn func(*LogEntry) error) error {
	return c.streamLogs(ctx, "/v1/workers/"+url.PathEscape(id)+"/logs", o, fn)
}
