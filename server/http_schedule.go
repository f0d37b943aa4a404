package server

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"

	"github.com/ciplat/ciplat/fsm/structs"
	"github.com/ciplat/ciplat/jobspec"
	"github.com/ciplat/ciplat/scheduler"
	"github.com/ciplat/ciplat/server/httpapi"
)

// scheduleView is POST /v1/schedule's answer: where the job would go now
// and why, computed on a snapshot of state without writing anything.
type scheduleView struct {
	// Placed is false when no node can run the job now (it would be
	// blocked, and its reason would be Explain).
	Placed   bool    `json:"placed"`
	NodeID   string  `json:"node_id,omitempty"`
	NodeName string  `json:"node_name,omitempty"`
	Score    float64 `json:"score,omitempty"`
	// Offers are the best nodes scored, best first.
	Offers  []scheduleOffer           `json:"offers"`
	Metrics *structs.PlacementMetrics `json:"metrics"`
	// Explain says it in words: "would run on n1 (score 0.812): 3 nodes
	// evaluated, ..." or "no node can run it: 3 nodes lacked memory".
	Explain string `json:"explain"`
	// Preemptions are the allocations that would be evicted to make room
	// (only with preemption on, when nothing fits otherwise).
	Preemptions []schedulePreemption `json:"preemptions,omitempty"`
	Algorithm   string               `json:"algorithm"`
	// Index is the Raft index of the state the dry run read.
	Index uint64 `json:"index"`
}

// scheduleOffer is one scored node.
type scheduleOffer struct {
	NodeID   string             `json:"node_id"`
	NodeName string             `json:"node_name"`
	Score    float64            `json:"score"`
	Scores   map[string]float64 `json:"scores,omitempty"`
}

// schedulePreemption is one allocation a placement would evict.
type schedulePreemption struct {
	AllocID  string `json:"alloc_id"`
	JobID    string `json:"job_id"`
	JobName  string `json:"job_name"`
	Priority int    `json:"priority"`
}

// handleSchedule is POST /v1/schedule, the scheduler's dry run: the body is
// a job spec (as POST /v1/jobs takes), the answer where it would be placed
// now, the offers, the metrics and the explanation. It runs the same
// scheduler, configuration and preemption as the workers, on a state
// snapshot, and commits nothing. ?seed=N fixes the random node sample.
func (s *Server) handleSchedule(w http.ResponseWriter, r *http.Request) (any, error) {
	body, err := httpapi.ReadSpec(r)
	if err != nil {
		return nil, err
	}
	if len(strings.TrimSpace(string(body))) == 0 {
		return nil, httpapi.BadRequest("empty body: send a job spec as YAML or JSON (the body of POST /v1/jobs)")
	}
	seed := uint64(s.now().UnixNano())
	if v := r.URL.Query().Get("seed"); v != "" {
		if seed, err = strconv.ParseUint(v, 10, 64); err != nil {
			return nil, httpapi.BadRequest("invalid seed %q: want a non-negative integer", v)
		}
	}
	spec, err := s.cfg.SpecLimits.ParseJob(body)
	if err != nil {
		var se jobspec.Errors
		if errors.As(err, &se) {
			return nil, err
		}
		return nil, httpapi.BadRequest("invalid job spec: %v", err)
	}
	_, jobs := httpapi.NewPipeline(spec, "")
	if len(jobs) != 1 {
		return nil, httpapi.BadRequest("the spec has %d jobs: POST /v1/schedule takes one job (the body of POST /v1/jobs)", len(jobs))
	}
	job := jobs[0]
	job.Placement = nil

	snap, err := s.State().Snapshot()
	if err != nil {
		return nil, err
	}
	sched, cfg := s.sched.forState(snap.StateStore)
	ev := &structs.Evaluation{ID: "dry-run", JobID: job.ID, PipelineID: job.PipelineID, Priority: job.Priority,
		Status: structs.EvalPending, TriggeredBy: "dry-run"}
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	plan, err := sched.Place(snap, ev, job, rng)
	if err != nil {
		return nil, err
	}
	if plan.Placement == nil && cfg.Preemption {
		if pp, err := sched.Preempt(snap, ev, job, rng, plan.Metrics); err != nil {
			return nil, err
		} else if pp != nil {
			plan = pp
		}
	}

	nodeName := func(id string) string {
		if n, _ := snap.NodeByID(nil, id); n != nil && n.Name != "" {
			return n.Name
		}
		return id
	}
	out := &scheduleView{Metrics: plan.Metrics, Algorithm: cfg.Algorithm, Offers: []scheduleOffer{},
		Index: snap.LatestIndex()}
	for _, o := range plan.Offers {
		out.Offers = append(out.Offers, scheduleOffer{NodeID: o.NodeID, NodeName: nodeName(o.NodeID), Score: o.Score, Scores: o.Scores})
	}
	why := scheduler.Explain(plan.Metrics)
	if plan.Placement == nil {
		out.Explain = "no node can run it: " + why
		httpapi.SetIndex(w, out.Index)
		return out, nil
	}
	a := plan.Placement
	out.Placed, out.NodeID, out.NodeName, out.Score = true, a.NodeID, nodeName(a.NodeID), a.Score
	out.Explain = fmt.Sprintf("would run on %s (score %.3f): %s", out.NodeName, a.Score, why)
	for _, p := range plan.Preemptions {
		v := schedulePreemption{AllocID: p.AllocID}
		if al, _ := snap.AllocByID(nil, p.AllocID); al != nil {
			if j, _ := snap.JobByID(nil, al.JobID); j != nil {
				v.JobID, v.JobName, v.Priority = j.ID, j.Name, j.Priority
			}
		}
		out.Preemptions = append(out.Preemptions, v)
	}
	if n := len(out.Preemptions); n > 0 {
		out.Explain += fmt.Sprintf("; after preempting %d lower-priority allocation(s)", n)
	}
	httpapi.SetIndex(w, out.Index)
	return out, nil
}
