package server

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/ciplat/ciplat/fsm"
	"github.com/ciplat/ciplat/fsm/state"
	"github.com/ciplat/ciplat/fsm/structs"
	"github.com/ciplat/ciplat/server/broker"
	"github.com/ciplat/ciplat/server/httpapi"
)

// TestEvalBroker_DeliveryLimitFailsEval: an evaluation nacked (or left
// unacked past the redelivery timeout) DeliveryLimit times is recorded
// failed through Raft with the reason, the job's reason says so, and a
// delayed follow-up evaluation keeps the job from being lost.
func TestEvalBroker_DeliveryLimitFailsEval(t *testing.T) {
	tests := []struct {
		name    string
		opt     func(*Config)
		give    func(b *broker.Broker, e *structs.Evaluation, token uint64)
		wantWhy string
	}{
		{"nacks", func(c *Config) {}, func(b *broker.Broker, e *structs.Evaluation, token uint64) {
			if _, err := b.Nack(e.ID, token, "plan conflict: the node's capacity was taken"); err != nil {
				t.Errorf("nack: %v", err)
			}
		}, "evaluation failed after 2 deliveries: plan conflict"},
		{"redelivery timeout", func(c *Config) { c.EvalBroker.RedeliveryTimeout = 50 * time.Millisecond },
			func(*broker.Broker, *structs.Evaluation, uint64) {}, // never acked: the worker is stuck
			"evaluation failed after 2 deliveries: not acked within 50ms"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := newSchedServer(t, "", func(c *Config) {
				c.EvalBroker.DeliveryLimit = 2
				c.FailedEvalFollowUp = time.Hour
				tt.opt(c)
			})
			pauseScheduling(ts)
			id := submitJob(ts, "doomed", 50, 100, 64)
			first := ""
			for i := 0; i < 2; i++ {
				e, token := dequeue(t, ts.srv.broker)
				if e.JobID != id {
					t.Fatalf("delivery %d is of job %s, want %s", i+1, e.JobID, id)
				}
				first = e.ID
				tt.give(ts.srv.broker, e, token)
			}
			start := time.Now()
			j := waitJob(ts, id, "shown failed", func(j *jobJSON) bool { return strings.Contains(j.Reason, tt.wantWhy) })
			if j.State != structs.JobPending || j.EvalID == first || j.EvalID == "" || j.RetryAt.Before(start.Add(59*time.Minute)) {
				t.Fatalf("job = state %s eval %s retry at %v; want PENDING on a follow-up in an hour", j.State, j.EvalID, j.RetryAt)
			}
			var failed []*structs.Evaluation
			ts.do("GET", "/v1/evaluations?status=failed", nil, nil, &failed)
			if len(failed) != 1 || failed[0].ID != first || !strings.Contains(failed[0].StatusDescription, tt.wantWhy) {
				t.Fatalf("failed evaluations = %+v; want %s with %q", failed, first, tt.wantWhy)
			}
			follow, _ := ts.srv.State().EvalByID(nil, j.EvalID)
			if follow == nil || follow.Status != structs.EvalPending || follow.PreviousEval != first ||
				follow.TriggeredBy != structs.TriggerFailedFollowUp {
				t.Fatalf("follow-up = %+v; want pending, following %s", follow, first)
			}
			waitFor(t, "the failed evaluations counter", func() bool { return ts.srv.metrics.evalsFailed.Load() == 1 })
		})
	}
}

// TestServer_Backpressure: a full broker, or too many evaluations waiting
// in state, makes submits answer 429 with Retry-After, and nothing is
// written; once there is room again submits go through.
func TestServer_Backpressure(t *testing.T) {
	t.Run("broker full", func(t *testing.T) {
		ts := newSchedServer(t, "", func(c *Config) { c.EvalBroker.MaxEvals = 2 })
		pauseScheduling(ts)
		submitJob(ts, "a", 50, 100, 64)
		submitJob(ts, "b", 50, 100, 64)
		waitFor(t, "the broker to be full", ts.srv.broker.Full)
		before := ts.srv.State().LatestIndex()
		for _, path := range []string{"/v1/jobs", "/v1/pipelines"} {
			body := jobSpecYAML("c", 50, 100, 64)
			if path == "/v1/pipelines" {
				body = "name: p\njobs:\n  c: { steps: [ 'true' ] }\n"
			}
			var e map[string]string
			resp := ts.do("POST", path, []byte(body), nil, &e)
			if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "5" ||
				!strings.Contains(e["error"], "cluster is busy: the evaluation broker holds its limit of 2") {
				t.Fatalf("POST %s on a full broker: HTTP %d, Retry-After %q, %q; want 429 saying why",
					path, resp.StatusCode, resp.Header.Get("Retry-After"), e["error"])
			}
		}
		if after := ts.srv.State().LatestIndex(); after != before {
			t.Fatalf("a refused submit wrote to state: index %d → %d", before, after)
		}
		// Workers drain the broker (no node: the jobs are blocked, out of
		// the broker); submits go through again.
		if _, code, body := setSchedConfig(ts, `{"workers": 1}`, ""); code != 200 {
			t.Fatalf("resume: %d %s", code, body)
		}
		waitFor(t, "both jobs blocked, out of the broker", func() bool {
			return ts.srv.metrics.blockedEvals.Load() == 2 && !ts.srv.broker.Full()
		})
		submitJob(ts, "c", 50, 100, 64)
		if n := ts.srv.metrics.submits429.Load(); n != 2 {
			t.Fatalf("rejected submits counter = %d, want 2", n)
		}
	})
	t.Run("too many waiting", func(t *testing.T) {
		ts := newSchedServer(t, "", func(c *Config) { c.MaxPendingEvals = 2 })
		submitJob(ts, "a", 50, 100, 64) // no node: both end blocked
		submitJob(ts, "b", 50, 100, 64)
		waitFor(t, "2 blocked evaluations", func() bool { return ts.srv.metrics.blockedEvals.Load() == 2 })
		var e map[string]string
		resp := ts.do("POST", "/v1/jobs", []byte(jobSpecYAML("c", 50, 100, 64)), nil, &e)
		if resp.StatusCode != 429 || !strings.Contains(e["error"], "2 evaluations wait for placement (limit 2)") {
			t.Fatalf("HTTP %d %q; want 429 naming the waiting evaluations", resp.StatusCode, e["error"])
		}
	})
}

// TestServer_BlockedUnblockedOnCapacity: a job that fits nowhere is
// blocked with its reason, and placed as soon as capacity frees (another
// job's allocation ends) or arrives (a node joins), woken by blocking
// queries on state, not by polling.
func TestServer_BlockedUnblockedOnCapacity(t *testing.T) {
	ts := newSchedServer(t, "", nil)
	addNode(ts, "n1", 4000, 4096)
	a := waitJob(ts, submitJob(ts, "a", 50, 3000, 512), "scheduled", isState(structs.JobScheduled))
	b := submitJob(ts, "b", 50, 2000, 512)
	jb := waitJob(ts, b, "blocked", func(j *jobJSON) bool { return strings.HasPrefix(j.Reason, "no node can run it") })
	if jb.State != structs.JobPending || jb.Explain != "1 node lacked cpu" {
		t.Fatalf("blocked job: state %s, explain %q; want PENDING, 1 node lacked cpu", jb.State, jb.Explain)
	}
	if e, _ := ts.srv.State().EvalByID(nil, jb.EvalID); e == nil || e.Status != structs.EvalBlocked {
		t.Fatalf("b's evaluation = %+v, want blocked", e)
	}

	reportAlloc(ts, a.AllocID, structs.AllocClientComplete, structs.JobSucceeded)
	if got := waitJob(ts, b, "scheduled", isState(structs.JobScheduled)); got.NodeID != "n1" {
		t.Fatalf("b placed on %s, want n1", got.NodeID)
	}

	c := submitJob(ts, "c", 50, 6000, 512)
	waitJob(ts, c, "blocked", func(j *jobJSON) bool { return strings.HasPrefix(j.Reason, "no node can run it") })
	addNode(ts, "n2", 8000, 8192)
	if got := waitJob(ts, c, "scheduled", isState(structs.JobScheduled)); got.NodeID != "n2" {
		t.Fatalf("c placed on %s, want the new node n2", got.NodeID)
	}
}

// TestServer_OperatorSchedulerConfig: GET shows the agent's flags until an
// operator stores a configuration through Raft; PUT validates, supports
// check-and-set, resizes the worker pool, and survives a restart.
func TestServer_OperatorSchedulerConfig(t *testing.T) {
	dir := t.TempDir()
	opt := func(c *Config) { c.SchedulerWorkers = 3 }
	ts := newSchedServer(t, dir, opt)
	var got httpapi.SchedulerConfigView
	ts.do("GET", "/v1/operator/scheduler", nil, nil, &got)
	if want := (httpapi.SchedulerConfigView{Algorithm: "binpack", Workers: 3, Source: "agent"}); got != want {
		t.Fatalf("default config %+v, want %+v", got, want)
	}
	waitFor(t, "3 workers", func() bool { return ts.srv.metrics.workers.Load() == 3 })

	v, code, body := setSchedConfig(ts, `{"algorithm": "spread"}`, "?cas=0")
	if code != 200 || v.Algorithm != "spread" || v.Source != "raft" || v.Workers != 3 || v.ModifyIndex == 0 {
		t.Fatalf("PUT spread: HTTP %d %s", code, body)
	}
	for _, c := range []struct{ name, body, query, want string }{
		{"stale cas", `{"algorithm": "binpack"}`, "?cas=0", fmt.Sprintf("modify_index is %d, not 0", v.ModifyIndex)},
		{"bad algorithm", `{"algorithm": "random"}`, "", `algorithm "random": want "binpack" or "spread"`},
		{"unknown field", `{"algo": "spread"}`, "", "unknown field"},
		{"too many workers", `{"workers": 1000}`, "", "workers 1000"},
		{"bad cas", `{}`, "?cas=x", "invalid cas"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, code, body := setSchedConfig(ts, c.body, c.query); code/100 != 4 || !strings.Contains(body, c.want) {
				t.Fatalf("HTTP %d %s; want 4xx mentioning %q", code, body, c.want)
			}
		})
	}
	if v, code, _ := setSchedConfig(ts, `{"algorithm": "spread", "preemption": true, "workers": 1}`, fmt.Sprintf("?cas=%d", v.ModifyIndex)); code != 200 || !v.Preemption || v.Workers != 1 {
		t.Fatalf("PUT with cas: HTTP %d %+v", code, v)
	}
	waitFor(t, "the pool to shrink to 1 worker", func() bool { return ts.srv.metrics.workers.Load() == 1 })

	ts.web.Close()
	if err := ts.srv.Shutdown(); err != nil {
		t.Fatal(err)
	}
	ts2 := newSchedServer(t, dir, opt)
	ts2.do("GET", "/v1/operator/scheduler", nil, nil, &got)
	if got.Algorithm != "spread" || !got.Preemption || got.Workers != 1 || got.Source != "raft" {
		t.Fatalf("after restart: %+v; want the stored spread, preemption, 1 worker", got)
	}
	waitFor(t, "1 worker after restart", func() bool { return ts2.srv.metrics.workers.Load() == 1 })
}

// TestServer_SchedulerAlgorithm: binpack stacks jobs on the fuller node,
// spread puts the next on the emptier one; switching takes effect through
// the stored configuration.
func TestServer_SchedulerAlgorithm(t *testing.T) {
	ts := newSchedServer(t, "", nil)
	addNode(ts, "n1", 4000, 4096)
	addNode(ts, "n2", 4000, 4096)
	if _, code, body := setSchedConfig(ts, `{"algorithm": "binpack"}`, ""); code != 200 {
		t.Fatalf("binpack: %d %s", code, body)
	}
	j1 := waitJob(ts, submitJob(ts, "j1", 50, 500, 256), "scheduled", isState(structs.JobScheduled))
	j2 := waitJob(ts, submitJob(ts, "j2", 50, 500, 256), "scheduled", isState(structs.JobScheduled))
	if j1.NodeID != j2.NodeID {
		t.Fatalf("binpack put j1 on %s and j2 on %s; want the same node", j1.NodeID, j2.NodeID)
	}
	if _, code, body := setSchedConfig(ts, `{"algorithm": "spread"}`, ""); code != 200 {
		t.Fatalf("spread: %d %s", code, body)
	}
	j3 := waitJob(ts, submitJob(ts, "j3", 50, 500, 256), "scheduled", isState(structs.JobScheduled))
	if j3.NodeID == j1.NodeID {
		t.Fatalf("spread put j3 on the fuller node %s", j3.NodeID)
	}
	if a, _ := ts.srv.State().AllocByID(nil, j3.AllocID); a == nil || a.Score <= 0 {
		t.Fatalf("j3's allocation %+v has no score", a)
	}
}

// TestServer_Preemption: with preemption off a high-priority job that fits
// nowhere waits; turned on, it evicts the lower-priority running job, which
// goes back to PENDING with the reason, without using a retry.
func TestServer_Preemption(t *testing.T) {
	ts := newSchedServer(t, "", nil)
	addNode(ts, "n1", 4000, 4096)
	low := submitJob(ts, "low", 10, 3000, 1024)
	jl := waitJob(ts, low, "scheduled", isState(structs.JobScheduled))
	reportAlloc(ts, jl.AllocID, structs.AllocClientRunning, structs.JobRunning)
	high := submitJob(ts, "high", 90, 2000, 1024)
	waitJob(ts, high, "blocked", func(j *jobJSON) bool { return strings.HasPrefix(j.Reason, "no node can run it") })
	if j := waitJob(ts, low, "running", isState(structs.JobRunning)); j.AllocID != jl.AllocID {
		t.Fatalf("with preemption off the low job moved: %+v", j)
	}

	if _, code, body := setSchedConfig(ts, `{"preemption": true}`, ""); code != 200 {
		t.Fatalf("preemption on: %d %s", code, body)
	}
	jh := waitJob(ts, high, "scheduled", isState(structs.JobScheduled))
	jl = waitJob(ts, low, "preempted", func(j *jobJSON) bool { return j.Reason == "preempted by high (priority 90)" || j.Attempt > 1 })
	if jl.State != structs.JobPending || jl.Attempt != 2 || jl.Rescheduled != 1 || len(jl.History) != 1 ||
		jl.History[0].State != structs.JobTerminated || jl.History[0].Reason != "preempted by high (priority 90)" {
		t.Fatalf("low after preemption: %+v; want PENDING, attempt 2 (1 rescheduled), a TERMINATED attempt with the reason", jl.Job)
	}
	old, _ := ts.srv.State().AllocByID(nil, jl.History[0].AllocID)
	if old.DesiredStatus != structs.AllocDesiredStop || old.PreemptedBy != jh.AllocID {
		t.Fatalf("evicted allocation = %+v; want desired stop, preempted by %s", old, jh.AllocID)
	}
	var listed []*httpapi.ClientAlloc
	ts.do("GET", "/v1/client/nodes/n1/allocations", nil, nil, &listed)
	if len(listed) != 1 || listed[0].ID != jh.AllocID {
		t.Fatalf("n1's client lists %d allocations; want only high's (the evicted one is stopped)", len(listed))
	}
	// The evicted job now fits nowhere: it waits, explained, for capacity.
	waitJob(ts, low, "blocked again", func(j *jobJSON) bool { return strings.HasPrefix(j.Reason, "no node can run it") })
	if n := ts.srv.metrics.preemptions.Load(); n != 1 {
		t.Fatalf("preemptions counter = %d, want 1", n)
	}
}

// TestServer_ScheduleDryRun: POST /v1/schedule says where a job would go,
// with offers, metrics and words, and writes nothing.
func TestServer_ScheduleDryRun(t *testing.T) {
	ts := newSchedServer(t, "", nil)
	addNode(ts, "n1", 4000, 4096)
	addNode(ts, "n2", 2000, 2048)
	dry := func(body string) (*scheduleView, int, string) {
		t.Helper()
		resp := ts.do("POST", "/v1/schedule?seed=7", []byte(body), nil, nil)
		b, _ := io.ReadAll(resp.Body)
		var v scheduleView
		if resp.StatusCode == 200 {
			if err := json.Unmarshal(b, &v); err != nil {
				t.Fatal(err)
			}
		}
		return &v, resp.StatusCode, string(b)
	}
	before := ts.srv.State().LatestIndex()

	v, code, body := dry(jobSpecYAML("fits", 50, 1000, 512))
	if code != 200 || !v.Placed || (v.NodeID != "n1" && v.NodeID != "n2") || v.NodeName != v.NodeID ||
		len(v.Offers) != 2 || v.Metrics == nil || v.Metrics.NodesEvaluated != 2 ||
		!strings.HasPrefix(v.Explain, "would run on "+v.NodeName) || v.Algorithm != "binpack" {
		t.Fatalf("dry run: HTTP %d %s", code, body)
	}
	if again, _, _ := dry(jobSpecYAML("fits", 50, 1000, 512)); again.NodeID != v.NodeID || again.Score != v.Score {
		t.Fatalf("same seed, other answer: %s (%v) then %s (%v)", v.NodeID, v.Score, again.NodeID, again.Score)
	}
	v, code, body = dry(jobSpecYAML("huge", 50, 100000, 512))
	if code != 200 || v.Placed || v.Explain != "no node can run it: 2 nodes lacked cpu" {
		t.Fatalf("dry run of a job that fits nowhere: HTTP %d %s", code, body)
	}
	if _, code, body = dry("name: j\n"); code != 400 || !strings.Contains(body, "steps") {
		t.Fatalf("dry run of a bad spec: HTTP %d %s; want 400 naming steps", code, body)
	}
	if after := ts.srv.State().LatestIndex(); after != before {
		t.Fatalf("dry runs wrote to state: index %d → %d", before, after)
	}
	if evals, _ := ts.srv.State().Evals(nil); len(evals) != 0 {
		t.Fatalf("dry runs created %d evaluations", len(evals))
	}

	// With preemption on, a dry run names what it would evict, and evicts
	// nothing.
	low := waitJob(ts, submitJob(ts, "low", 10, 3500, 512), "scheduled", isState(structs.JobScheduled))
	waitJob(ts, submitJob(ts, "filler", 10, 1800, 512), "scheduled", isState(structs.JobScheduled))
	if _, code, body := setSchedConfig(ts, `{"preemption": true}`, ""); code != 200 {
		t.Fatalf("preemption on: %d %s", code, body)
	}
	before = ts.srv.State().LatestIndex()
	v, code, body = dry(jobSpecYAML("urgent", 90, 3000, 512))
	if code != 200 || !v.Placed || v.NodeID != "n1" || len(v.Preemptions) != 1 || v.Preemptions[0].JobName != "low" ||
		v.Preemptions[0].Priority != 10 || !strings.Contains(v.Explain, "after preempting 1") {
		t.Fatalf("dry run with preemption: HTTP %d %s", code, body)
	}
	if after := ts.srv.State().LatestIndex(); after != before {
		t.Fatalf("a dry run with preemption wrote to state")
	}
	if a, _ := ts.srv.State().AllocByID(nil, low.AllocID); !a.Live() {
		t.Fatalf("a dry run evicted %s", a.ID)
	}
}

// TestServer_MetricsEndpoint: GET /v1/metrics exposes the broker and
// scheduler counters in the Prometheus text format.
func TestServer_MetricsEndpoint(t *testing.T) {
	ts := newSchedServer(t, "", nil)
	addNode(ts, "n1", 4000, 4096)
	waitJob(ts, submitJob(ts, "a", 50, 100, 64), "scheduled", isState(structs.JobScheduled))
	submitJob(ts, "blocked", 50, 100000, 64)
	waitFor(t, "a blocked evaluation", func() bool { return ts.srv.metrics.evalsBlocked.Load() == 1 })

	resp := ts.do("GET", "/v1/metrics", nil, nil, nil)
	b, _ := io.ReadAll(resp.Body)
	text := string(b)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain; version=0.0.4") {
		t.Fatalf("HTTP %d, Content-Type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	for _, want := range []string{
		"ciplat_sched_placements_total 1\n",
		"ciplat_sched_evals_blocked_total 1\n",
		"ciplat_sched_plan_conflicts_total 0\n",
		"ciplat_sched_workers 2\n",
		"ciplat_broker_delivered_total ",
		"ciplat_broker_max_evals 10000\n",
		"# TYPE ciplat_broker_ready_evals gauge\n",
		`ciplat_broker_ready_evals{priority="50"} 0` + "\n",
		"# TYPE ciplat_sched_placement_latency_seconds histogram\n",
		`ciplat_sched_placement_latency_seconds_bucket{le="+Inf"} 1` + "\n",
		"ciplat_sched_placement_latency_seconds_count 1\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %q", strings.TrimSpace(want))
		}
	}
	for i, line := range strings.Split(strings.TrimSpace(text), "\n") {
		if strings.HasPrefix(line, "# HELP ") || strings.HasPrefix(line, "# TYPE ") {
			continue
		}
		if f := strings.Fields(line); len(f) != 2 || !strings.HasPrefix(f[0], "ciplat_") {
			t.Errorf("line %d %q is not `name{labels} value`", i+1, line)
		}
	}
}

// TestPlanApplier_ConcurrentWorkersNeverOvercommit runs many workers
// against tight capacity while a simulated client finishes allocations,
// then replays the Raft log entry by entry into a fresh FSM and checks that
// no committed state ever had a node over its capacity.
func TestPlanApplier_ConcurrentWorkersNeverOvercommit(t *testing.T) {
	ts := newSchedServer(t, "", func(c *Config) { c.SchedulerWorkers = 16 })
	const nodes, jobs = 3, 45
	for i := 0; i < nodes; i++ {
		addNode(ts, fmt.Sprintf("n%d", i), 1000, 1000) // three 300-cpu jobs each
	}
	var wg sync.WaitGroup
	ids := make([]string, jobs)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < jobs; i += 8 {
				ids[i] = submitJobNoFatal(t, ts, fmt.Sprintf("j%d", i))
			}
		}()
	}
	wg.Wait()

	// The client: finish every allocation placed on its node.
	stop := make(chan struct{})
	var cw sync.WaitGroup
	for i := 0; i < nodes; i++ {
		cw.Add(1)
		go func() {
			defer cw.Done()
			finishAllocs(ts, fmt.Sprintf("n%d", i), stop)
		}()
	}
	waitFor(t, "every job to succeed", func() bool {
		for _, id := range ids {
			if j, _ := ts.srv.State().JobByID(nil, id); j == nil || j.State != structs.JobSucceeded {
				if testing.Verbose() {
					e, _ := ts.srv.State().EvalByID(nil, j.EvalID)
					t.Logf("job %s %s %q eval %+v broker %+v", j.Name, j.State, j.Reason, e, ts.srv.broker.Stats())
				}
				return false
			}
		}
		return true
	})
	close(stop)
	cw.Wait()
	t.Logf("plan conflicts %d, retries on fresh state %d", ts.srv.metrics.planConflicts.Load(), ts.srv.metrics.planRetries.Load())

	// Replay every committed entry and check capacity after each.
	replay, err := fsm.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	first, _ := ts.srv.raftStore.FirstIndex()
	last, _ := ts.srv.raftStore.LastIndex()
	plans := 0
	for i := first; i <= last; i++ {
		var l raft.Log
		if err := ts.srv.raftStore.GetLog(i, &l); err != nil {
			t.Fatalf("log %d: %v", i, err)
		}
		if resp := replay.Apply(&l); resp != nil {
			if err, ok := resp.(error); ok {
				t.Fatalf("replay entry %d: %v", i, err)
			}
		}
		if l.Type != raft.LogCommand || len(l.Data) == 0 || structs.MessageType(l.Data[0]) != structs.PlanApplyRequestType {
			continue
		}
		plans++
		if over := overCommitted(replay.State()); over != "" {
			t.Fatalf("after entry %d: %s", i, over)
		}
	}
	if plans == 0 {
		t.Fatal("no plan entries replayed")
	}
}

// overCommitted names a node whose live allocations exceed its capacity.
func overCommitted(st *state.StateStore) string {
	nodes, _ := st.Nodes(nil)
	for _, n := range nodes {
		allocs, _ := st.AllocsByNode(nil, n.ID)
		var used structs.Resources
		for _, a := range allocs {
			if a.Live() {
				used = used.Add(a.Resources)
			}
		}
		if ok, dim := used.Fits(n.Capacity()); !ok {
			return fmt.Sprintf("node %s over its %s: %+v used of %+v", n.ID, dim, used, n.Capacity())
		}
	}
	return ""
}

// submitJobNoFatal submits a 300-cpu job from any goroutine.
func submitJobNoFatal(t *testing.T, ts *testServer, name string) string {
	resp, err := ts.web.Client().Post(ts.web.URL+"/v1/jobs", "application/yaml", strings.NewReader(jobSpecYAML(name, 50, 300, 200)))
	if err != nil {
		t.Error(err)
		return ""
	}
	defer resp.Body.Close()
	var p struct {
		Jobs []*jobJSON `json:"jobs"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&p); err != nil || resp.StatusCode != 201 || len(p.Jobs) != 1 {
		t.Errorf("submit %s: HTTP %d %v", name, resp.StatusCode, err)
		return ""
	}
	return p.Jobs[0].ID
}

// finishAllocs acts as a node's client: it follows the node's allocations
// with blocking queries and reports each new one succeeded, until stop.
func finishAllocs(ts *testServer, nodeID string, stop <-chan struct{}) {
	var index uint64
	done := map[string]bool{}
	for {
		select {
		case <-stop:
			return
		default:
		}
		resp, err := ts.web.Client().Get(fmt.Sprintf("%s/v1/client/nodes/%s/allocations?index=%d&wait=1s", ts.web.URL, nodeID, index))
		if err != nil {
			return
		}
		var allocs []*httpapi.ClientAlloc
		_ = json.NewDecoder(resp.Body).Decode(&allocs)
		resp.Body.Close()
		fmt.Sscan(resp.Header.Get("X-Ciplat-Index"), &index)
		var updates []*structs.AllocUpdate
		for _, a := range allocs {
			if !done[a.ID] && a.ClientStatus == structs.AllocClientPending {
				done[a.ID] = true
				updates = append(updates, &structs.AllocUpdate{AllocID: a.ID, ClientStatus: structs.AllocClientComplete, JobState: structs.JobSucceeded})
			}
		}
		if len(updates) > 0 {
			b, _ := json.Marshal(updates)
			if resp, err := ts.web.Client().Post(ts.web.URL+"/v1/client/allocations", "application/json", strings.NewReader(string(b))); err == nil {
				resp.Body.Close()
			}
		}
	}
}
