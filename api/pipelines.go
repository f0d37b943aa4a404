package api

import (
	"context"
	"net/http"
	"net/url"
)

// SubmitOptions tune a pipeline submit.
type SubmitOptions struct {
	// IdempotencyKey makes a retried submit of the same spec return the
	// first pipeline. Another spec under a key still held (the agent's
	// -idempotency-ttl, default 24h) is an *Error with StatusCode 409; a key
	// that is not 1–128 printable ASCII characters, 400.
	IdempotencyKey string
	// ContentType is "application/yaml" (default) or "application/json".
	ContentType string
}

// SubmitPipeline posts a pipeline spec (YAML or JSON bytes, as written by
// the user) and returns the registered pipeline. Invalid specs come back as
// *Error with StatusCode 400 and every problem, line by line, in Message.
func (c *Client) SubmitPipeline(ctx context.Context, spec []byte, o *SubmitOptions) (*Pipeline, error) {
	return c.submit(ctx, "/v1/pipelines", spec, o)
}

// SubmitJob posts a single job spec; it runs as a one-job pipeline.
func (c *Client) SubmitJob(ctx context.Context, spec []byte, o *SubmitOptions) (*Pipeline, error) {
	return c.submit(ctx, "/v1/jobs", spec, o)
}

func (c *Client) submit(ctx context.Context, path string, spec []byte, o *SubmitOptions) (*Pipeline, error) {
	hdr := http.Header{}
	hdr.Set("Content-Type", "application/yaml")
	if o != nil {
		if o.ContentType != "" {
			hdr.Set("Content-Type", o.ContentType)
		}
		if o.IdempotencyKey != "" {
			hdr.Set("Idempotency-Key", o.IdempotencyKey)
		}
	}
	var p Pipeline
	if err := c.send(ctx, http.MethodPost, path, spec, &p, hdr); err != nil {
		return nil, err
	}
	return &p, nil
}

// Pipelines lists pipelines, newest first.
func (c *Client) Pipelines(ctx context.Context, q *QueryOptions) ([]*PipelineStub, *QueryMeta, error) {
	var out []*PipelineStub
	m, err := c.get(ctx, "/v1/pipelines", q, &out)
	return out, m, err
}

// Pipeline reads one pipeline with its jobs. id may be a unique prefix.
func (c *Client) Pipeline(ctx context.Context, id string, q *QueryOptions) (*Pipeline, *QueryMeta, error) {
	var out Pipeline
	m, err := c.get(ctx, "/v1/pipelines/"+url.PathEscape(id), q, &out)
	if err != nil {
		return nil, nil, err
	}
	return &out, m, nil
}

// CancelPipeline cancels every job of a pipeline that has not ended; 409 when
// the pipeline already ended.
func (c *Client) CancelPipeline(ctx context.Context, id string) (*Pipeline, error) {
	var out Pipeline
	if err := c.send(ctx, http.MethodPost, "/v1/pipelines/"+url.PathEscape(id)+"/cancel", nil, &out, nil); err != nil {
		return nil, err
	}
	return &out, nil
}

// Job reads one job. id may be a unique prefix.
func (c *Client) Job(ctx context.Context, id string, q *QueryOptions) (*Job, *QueryMeta, error) {
	var out Job
	m, err := c.get(ctx, "/v1/jobs/"+url.PathEscape(id), q, &out)
	if err != nil {
		return nil, nil, err
	}
	return &out, m, nil
}

// Nodes lists the client nodes.
func (c *Client) Nodes(ctx context.Context, q *QueryOptions) ([]*Node, *QueryMeta, error) {
	var out []*Node
	m, err := c.get(ctx, "/v1/nodes", q, &out)
	return out, m, err
}

// Node reads one node. id may be a unique prefix.
func (c *Client) Node(ctx context.Context, id string) (*Node, error) {
	var out Node
	if _, err := c.get(ctx, "/v1/nodes/"+url.PathEscape(id), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Leader returns the Raft address of the cluster leader. Until the server
// is ready (see Ready) it answers 503, an *Error with the reason.
func (c *Client) Leader(ctx context.Context) (string, error) {
	var out string
	_, err := c.get(ctx, "/v1/status/leader", nil, &out)
	return out, err
}
