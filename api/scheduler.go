package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
)

// SchedulerConfiguration is the scheduler configuration in force
// (GET /v1/operator/scheduler).
type SchedulerConfiguration struct {
	// Algorithm is "binpack" or "spread".
	Algorithm string `json:"algorithm"`
	// Preemption lets a job that fits nowhere evict lower-priority ones.
	Preemption bool `json:"preemption"`
	// Workers is how many scheduler goroutines the leader runs.
	Workers int `json:"workers"`
	// Source is "raft" once an operator stored a configuration, else
	// "agent" (the leader's flags).
	Source string `json:"source"`
	// ModifyIndex is the check-and-set index of SetSchedulerConfiguration.
	ModifyIndex uint64 `json:"modify_index"`
}

// SchedulerConfigurationRequest replaces the scheduler configuration: an
// empty Algorithm means binpack, a nil Workers the agent's flag.
type SchedulerConfigurationRequest struct {
	Algorithm  string `json:"algorithm,omitempty"`
	Preemption bool   `json:"preemption"`
	Workers    *int   `json:"workers,omitempty"`
}

// SchedulerConfiguration reads the scheduler configuration in force.
func (c *Client) SchedulerConfiguration(ctx context.Context, q *QueryOptions) (*SchedulerConfiguration, *QueryMeta, error) {
	var out SchedulerConfiguration
	meta, err := c.get(ctx, "/v1/operator/scheduler", q, &out)
	if err != nil {
		return nil, nil, err
	}
	return &out, meta, nil
}

// SetSchedulerConfiguration stores a scheduler configuration through Raft.
// With cas non-nil it applies only if the stored configuration's
// ModifyIndex is *cas (0: never set); otherwise the error is a 409.
func (c *Client) SetSchedulerConfiguration(ctx context.Context, req *SchedulerConfigurationRequest, cas *uint64) (*SchedulerConfiguration, error) {
	b, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	var q *QueryOptions
	if cas != nil {
		q = &QueryOptions{Params: map[string]string{"cas": strconv.FormatUint(*cas, 10)}}
	}
	resp, err := c.do(ctx, http.MethodPut, "/v1/operator/scheduler", q, bytes.NewReader(b), http.Header{"Content-Type": {"application/json"}})
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out SchedulerConfiguration
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, fmt.Errorf("decode scheduler configuration: %w", err)
	}
	return &out, nil
}

// ScheduleDryRun is POST /v1/schedule's answer: where a job would be placed
// now and why, computed without committing anything.
type ScheduleDryRun struct {
	Placed      bool              `json:"placed"`
	NodeID      string            `json:"node_id,omitempty"`
	NodeName    string            `json:"node_name,omitempty"`
	Score       float64           `json:"score,omitempty"`
	Offers      []ScheduleOffer   `json:"offers"`
	Metrics     *PlacementMetrics `json:"metrics"`
	Explain     string            `json:"explain"`
	Preemptions []SchedulePreempt `json:"preemptions,omitempty"`
	Algorithm   string            `json:"algorithm"`
	Index       uint64            `json:"index"`
}

// ScheduleOffer is one node the dry run scored.
type ScheduleOffer struct {
	NodeID   string             `json:"node_id"`
	NodeName string             `json:"node_name"`
	Score    float64            `json:"score"`
	Scores   map[string]float64 `json:"scores,omitempty"`
}

// SchedulePreempt is one allocation the placement would evict.
type SchedulePreempt struct {
	AllocID  string `json:"alloc_id"`
	JobID    string `json:"job_id"`
	JobName  string `json:"job_name"`
	Priority int    `json:"priority"`
}

// Schedule asks where a job spec (the body of SubmitJob: YAML or JSON)
// would be placed, without submitting it.
func (c *Client) Schedule(ctx context.Context, spec []byte) (*ScheduleDryRun, error) {
	var out ScheduleDryRun
	hdr := http.Header{"Content-Type": {"application/yaml"}} // JSON is YAML too
	if err := c.send(ctx, http.MethodPost, "/v1/schedule", spec, &out, hdr); err != nil {
		return nil, err
	}
	return &out, nil
}
