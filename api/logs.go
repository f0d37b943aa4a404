package api

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
)

// LogOptions select what a log read returns.
type LogOptions struct {
	// Step limits the read to one step (by name); empty means all steps.
	Step string
	// Follow keeps the stream open until the job (or pipeline) ends.
	Follow bool
	// After skips entries with Seq <= After (resume a follow).
	After uint64
	// Tail, when positive, starts with the last Tail entries (of Step, if
	// given) of a job's or worker's log.
	Tail int
}

// JobLogs streams a job's log entries to fn, in order. With Follow it returns
// when the job has ended and every line was delivered, or when ctx ends.
func (c *Client) JobLogs(ctx context.Context, jobID string, o *LogOptions, fn func(*LogEntry) error) error {
	return c.streamLogs(ctx, "/v1/jobs/"+url.PathEscape(jobID)+"/logs", o, fn)
}

// PipelineLogs streams the log entries of every job of a pipeline to fn,
// each job's in order. With Follow it returns when the pipeline has ended.
func (c *Client) PipelineLogs(ctx context.Context, pipelineID string, o *LogOptions, fn func(*LogEntry) error) error {
	return c.streamLogs(ctx, "/v1/pipelines/"+url.PathEscape(pipelineID)+"/logs", o, fn)
}

func (c *Client) streamLogs(ctx context.Context, path string, o *LogOptions, fn func(*LogEntry) error) error {
	q := &QueryOptions{Params: map[string]string{}}
	if o != nil {
		if o.Step != "" {
			q.Params["step"] = o.Step
		}
		if o.Follow {
			q.Params["follow"] = "true"
		}
		if o.After > 0 {
			q.Params["after"] = strconv.FormatUint(o.After, 10)
		}
		if o.Tail > 0 {
			q.Params["tail"] = strconv.Itoa(o.Tail)
		}
	}
	resp, err := c.do(ctx, http.MethodGet, path, q, nil, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 {
			continue // heartbeat
		}
		var e LogEntry
		if err := json.Unmarshal(line, &e); err != nil {
			return fmt.Errorf("decode log entry: %w", err)
		}
		if err := fn(&e); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil && ctx.Err() == nil {
		return fmt.Errorf("log stream: %w", err)
	}
	return ctx.Err()
}
