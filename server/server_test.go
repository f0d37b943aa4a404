package server

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ciplat/ciplat/api"
)

const twoJobs = `
name: two
jobs:
  a:
    steps: [ { name: s1, run: "true" } ]
  b:
    needs: [a]
    retry: { attempts: 1, backoff: 10ms }
    steps: [ { name: s1, run: "true" }, { name: s2, run: "true" } ]
`

func registerNode(ts *testServer, id string) {
	ts.t.Helper()
	n := api.Node{ID: id, Name: "node-" + id, Resources: api.Resources{CPU: 4000, MemoryMB: 8192},
		Drivers: map[string]*api.DriverInfo{"exec": {Detected: true, Healthy: true}}}
	b, _ := json.Marshal(n)
	if resp := ts.do("POST", "/v1/client/nodes", b, nil, nil); resp.StatusCode != 200 {
		ts.t.Fatalf("register node: HTTP %d", resp.StatusCode)
	}
}

func submit(ts *testServer, spec string, hdr map[string]string) (*api.Pipeline, int) {
	ts.t.Helper()
	var p api.Pipeline
	resp := ts.do("POST", "/v1/pipelines", []byte(spec), hdr, &p)
	return &p, resp.StatusCode
}

// nodeAllocs waits (blocking query) for the node's live allocations to
// satisfy pred and returns them.
func nodeAllocs(ts *testServer, nodeID string, pred func([]*api.Allocation) bool) []*api.Allocation {
	ts.t.Helper()
	var index uint64
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		var allocs []*api.Allocation
		resp := ts.do("GET", fmt.Sprintf("/v1/client/nodes/%s/allocations?index=%d&wait=5s", nodeID, index), nil, nil, &allocs)
		if resp.StatusCode != 200 {
			ts.t.Fatalf("allocations: HTTP %d", resp.StatusCode)
		}
		if pred(allocs) {
			return allocs
		}
		index, _ = strconv.ParseUint(resp.Header.Get("X-Ciplat-Index"), 10, 64)
	}
	ts.t.Fatalf("timed out waiting for node %s allocations", nodeID)
	return nil
}

func allocFor(jobName string) func([]*api.Allocation) bool {
	return func(as []*api.Allocation) bool {
		for _, a := range as {
			if a.Job != nil && a.Job.Name == jobName && a.ClientStatus == api.AllocClientPending {
				return true
			}
		}
		return false
	}
}

func pick(as []*api.Allocation, jobName string) *api.Allocation {
	for _, a := range as {
		if a.Job != nil && a.Job.Name == jobName && a.ClientStatus == api.AllocClientPending {
			return a
		}
	}
	return nil
}

func report(ts *testServer, u ...*api.AllocUpdate) {
	ts.t.Helper()
	b, _ := json.Marshal(u)
	if resp := ts.do("POST", "/v1/client/allocations", b, nil, nil); resp.StatusCode != 200 {
		ts.t.Fatalf("alloc update: HTTP %d", resp.StatusCode)
	}
}

func getPipeline(ts *testServer, id string) *api.Pipeline {
	ts.t.Helper()
	var p api.Pipeline
	if resp := ts.do("GET", "/v1/pipelines/"+id, nil, nil, &p); resp.StatusCode != 200 {
		ts.t.Fatalf("get pipeline: HTTP %d", resp.StatusCode)
	}
	return &p
}

func jobState(p *api.Pipeline, name string) *api.Job {
	for _, j := range p.Jobs {
		if j.Name == name {
			return j
		}
	}
	return nil
}

// TestServer_PipelineFlow drives one pipeline through the server as a client
// agent would: placement after needs, RUNNING, a retry, success.
func TestServer_PipelineFlow(t *testing.T) {
	ts := newTestServer(t, "")
	registerNode(ts, "n1")
	p, code := submit(ts, twoJobs, nil)
	if code != http.StatusCreated {
		t.Fatalf("submit: HTTP %d", code)
	}
	if p.State != api.StatePending || len(p.Jobs) != 2 {
		t.Fatalf("submitted pipeline: state %s, %d jobs", p.State, len(p.Jobs))
	}
	if b := jobState(p, "b"); !strings.Contains(b.Reason, "waiting for needs: a") {
		t.Fatalf("job b reason %q", b.Reason)
	}

	a := pick(nodeAllocs(ts, "n1", allocFor("a")), "a")
	if got := jobState(getPipeline(ts, p.ID), "a").State; got != api.StateScheduled {
		t.Fatalf("job a is %s after placement, want SCHEDULED", got)
	}
	report(ts, &api.AllocUpdate{AllocID: a.ID, ClientStatus: api.AllocClientRunning, JobState: api.StateRunning})
	if got := getPipeline(ts, p.ID); got.State != api.StateRunning || jobState(got, "a").State != api.StateRunning {
		t.Fatalf("after RUNNING: pipeline %s, a %s", got.State, jobState(got, "a").State)
	}
	// b is not placed before a succeeds.
	if j := jobState(getPipeline(ts, p.ID), "b"); j.State != api.StatePending || j.AllocID != "" {
		t.Fatalf("b placed before its need succeeded: %+v", j)
	}
	report(ts, &api.AllocUpdate{AllocID: a.ID, ClientStatus: api.AllocClientComplete, JobState: api.StateSucceeded})

	b1 := pick(nodeAllocs(ts, "n1", allocFor("b")), "b")
	report(ts, &api.AllocUpdate{AllocID: b1.ID, ClientStatus: api.AllocClientRunning, JobState: api.StateRunning})
	report(ts, &api.AllocUpdate{AllocID: b1.ID, ClientStatus: api.AllocClientFailed, JobState: api.StateFailed, Reason: "step s2 exited 1"})
	// One retry is allowed: a second allocation arrives for attempt 2.
	b2 := pick(nodeAllocs(ts, "n1", allocFor("b")), "b")
	if b2.ID == b1.ID || b2.Attempt != 2 {
		t.Fatalf("retry allocation: id %s (first %s), attempt %d", b2.ID, b1.ID, b2.Attempt)
	}
	report(ts, &api.AllocUpdate{AllocID: b2.ID, ClientStatus: api.AllocClientRunning, JobState: api.StateRunning})
	report(ts, &api.AllocUpdate{AllocID: b2.ID, ClientStatus: api.AllocClientComplete, JobState: api.StateSucceeded})

	got := getPipeline(ts, p.ID)
	if got.State != api.StateSucceeded {
		t.Fatalf("pipeline %s, want SUCCEEDED", got.State)
	}
	jb := jobState(got, "b")
	if jb.Attempt != 2 || len(jb.History) != 2 || jb.History[0].State != api.StateFailed {
		t.Fatalf("job b attempts/history: %d %+v", jb.Attempt, jb.History)
	}
	// Cancelling a finished pipeline is a conflict.
	var e map[string]string
	if resp := ts.do("POST", "/v1/pipelines/"+p.ID+"/cancel", nil, nil, &e); resp.StatusCode != http.StatusConflict || e["error"] == "" {
		t.Fatalf("cancel finished: HTTP %d %v", resp.StatusCode, e)
	}
}

func TestServer_FailedNeedSkipsDependants(t *testing.T) {
	ts := newTestServer(t, "")
	registerNode(ts, "n1")
	p, _ := submit(ts, `
name: skip
jobs:
  a: { steps: [ "false" ] }
  b: { needs: [a], steps: [ "true" ] }
  c: { needs: [b], steps: [ "true" ] }
`, nil)
	a := pick(nodeAllocs(ts, "n1", allocFor("a")), "a")
	report(ts, &api.AllocUpdate{AllocID: a.ID, ClientStatus: api.AllocClientFailed, JobState: api.StateFailed, Reason: "step step-1 exited 1"})
	got := getPipeline(ts, p.ID)
	if got.State != api.StateFailed {
		t.Fatalf("pipeline %s, want FAILED", got.State)
	}
	for _, name := range []string{"b", "c"} {
		j := jobState(got, name)
		if j.State != api.StateCancelled || !strings.Contains(j.Reason, "skipped") {
			t.Fatalf("job %s: %s %q, want CANCELLED (skipped)", name, j.State, j.Reason)
		}
	}
}

func TestServer_CancelStopsAllocation(t *testing.T) {
	ts := newTestServer(t, "")
	registerNode(ts, "n1")
	p, _ := submit(ts, "name: c\njobs:\n  a: { steps: [ 'sleep 100' ] }\n  b: { needs: [a], steps: [ 'true' ] }\n", nil)
	a := pick(nodeAllocs(ts, "n1", allocFor("a")), "a")
	report(ts, &api.AllocUpdate{AllocID: a.ID, ClientStatus: api.AllocClientRunning, JobState: api.StateRunning})
	var got api.Pipeline
	if resp := ts.do("POST", "/v1/pipelines/"+p.ID[:8]+"/cancel", nil, nil, &got); resp.StatusCode != 200 {
		t.Fatalf("cancel: HTTP %d", resp.StatusCode)
	}
	if got.State != api.StateCancelled {
		t.Fatalf("pipeline %s after cancel", got.State)
	}
	for _, j := range got.Jobs {
		if j.State != api.StateCancelled {
			t.Fatalf("job %s is %s after cancel", j.Name, j.State)
		}
	}
	allocs := nodeAllocs(ts, "n1", func(as []*api.Allocation) bool {
		return len(as) == 1 && as[0].DesiredStatus == api.AllocDesiredStop
	})
	if allocs[0].ID != a.ID {
		t.Fatalf("stopped alloc %s, want %s", allocs[0].ID, a.ID)
	}
}

func TestServer_IdempotencyKey(t *testing.T) {
	ts := newTestServer(t, "")
	hdr := map[string]string{"Idempotency-Key": "build-42"}
	p1, c1 := submit(ts, twoJobs, hdr)
	p2, c2 := submit(ts, twoJobs, hdr)
	if c1 != http.StatusCreated || c2 != http.StatusOK {
		t.Fatalf("codes %d, %d; want 201 then 200", c1, c2)
	}
	if p1.ID != p2.ID {
		t.Fatalf("retried submit created a second pipeline: %s vs %s", p1.ID, p2.ID)
	}
	var list []api.PipelineStub
	ts.do("GET", "/v1/pipelines", nil, nil, &list)
	if len(list) != 1 {
		t.Fatalf("%d pipelines, want 1", len(list))
	}
	// Concurrent retries with one key still make one pipeline.
	var wg sync.WaitGroup
	ids := make([]string, 8)
	for i := range ids {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			p, _ := submit(ts, twoJobs, map[string]string{"Idempotency-Key": "race"})
			ids[i] = p.ID
		}(i)
	}
	wg.Wait()
	for _, id := range ids {
		if id != ids[0] || id == "" {
			t.Fatalf("concurrent submits with one key gave %v", ids)
		}
	}
}

func TestServer_BlockingQueryWakesOnWrite(t *testing.T) {
	ts := newTestServer(t, "")
	var list []api.PipelineStub
	resp := ts.do("GET", "/v1/pipelines", nil, nil, &list)
	idx := resp.Header.Get("X-Ciplat-Index")
	if idx == "" {
		t.Fatal("no X-Ciplat-Index header")
	}
	done := make(chan []api.PipelineStub)
	go func() {
		var l []api.PipelineStub
		ts.do("GET", "/v1/pipelines?wait=20s&index="+idx, nil, nil, &l)
		done <- l
	}()
	submit(ts, twoJobs, nil)
	select {
	case l := <-done:
		if len(l) != 1 {
			t.Fatalf("blocking query answered %d pipelines", len(l))
		}
	case <-time.After(15 * time.Second):
		t.Fatal("blocking query did not wake on a write")
	}
}

func TestServer_LogsFollowEndsWithJob(t *testing.T) {
	ts := newTestServer(t, "")
	registerNode(ts, "n1")
	p, _ := submit(ts, "name: l\njobs:\n  a: { steps: [ { name: s, run: 'echo hi' } ] }\n", nil)
	a := pick(nodeAllocs(ts, "n1", allocFor("a")), "a")
	jobID := a.JobID
	push := func(lines ...string) {
		var es []*api.LogEntry
		for _, l := range lines {
			es = append(es, &api.LogEntry{JobID: jobID, JobName: "a", Step: "s", Attempt: 1, Stream: "stdout", Time: time.Now(), Line: l})
		}
		b, _ := json.Marshal(es)
		if resp := ts.do("POST", "/v1/client/logs", b, nil, nil); resp.StatusCode != 200 {
			t.Fatalf("push logs: HTTP %d", resp.StatusCode)
		}
	}
	push("one", "two")
	lines := make(chan string, 10)
	go func() {
		defer close(lines)
		resp, err := http.Get(ts.web.URL + "/v1/pipelines/" + p.ID + "/logs?follow=true")
		if err != nil {
			return
		}
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			var e api.LogEntry
			if json.Unmarshal(sc.Bytes(), &e) == nil {
				lines <- e.Line
			}
		}
	}()
	for _, want := range []string{"one", "two"} {
		if got := <-lines; got != want {
			t.Fatalf("line %q, want %q", got, want)
		}
	}
	push("three")
	if got := <-lines; got != "three" {
		t.Fatalf("followed line %q, want three", got)
	}
	report(ts, &api.AllocUpdate{AllocID: a.ID, ClientStatus: api.AllocClientComplete, JobState: api.StateSucceeded})
	select {
	case l, ok := <-lines:
		if ok {
			t.Fatalf("unexpected line %q", l)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("follow did not end when the pipeline finished")
	}
	// A plain read of one step returns everything, with sequence numbers.
	var n int
	resp := ts.do("GET", "/v1/jobs/"+jobID+"/logs?step=s", nil, nil, nil)
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		n++
	}
	if n != 3 {
		t.Fatalf("job logs: %d lines, want 3", n)
	}
}

func TestServer_RestartKeepsPipelines(t *testing.T) {
	dir := t.TempDir()
	ts := newTestServer(t, dir)
	registerNode(ts, "n1")
	p, _ := submit(ts, "name: r\njobs:\n  a: { steps: [ 'true' ] }\n", nil)
	a := pick(nodeAllocs(ts, "n1", allocFor("a")), "a")
	report(ts, &api.AllocUpdate{AllocID: a.ID, ClientStatus: api.AllocClientComplete, JobState: api.StateSucceeded})
	ts.stop()

	ts2 := newTestServer(t, dir)
	got := getPipeline(ts2, p.ID)
	if got.State != api.StateSucceeded || jobState(got, "a").State != api.StateSucceeded {
		t.Fatalf("after restart: pipeline %s", got.State)
	}
	var nodes []api.Node
	ts2.do("GET", "/v1/nodes", nil, nil, &nodes)
	if len(nodes) != 1 || nodes[0].ID != "n1" {
		t.Fatalf("nodes after restart: %+v", nodes)
	}
}

// TestServer_BadInput checks every route's answer to bad input: a 4xx with a
// JSON error that says what is wrong, and nothing written.
func TestServer_BadInput(t *testing.T) {
	ts := newTestServer(t, "")
	big := strings.Repeat("#", 1<<20+10)
	cases := []struct {
		name, method, path, body string
		hdr                      map[string]string
		code                     int
		contains                 string
	}{
		{"empty spec", "POST", "/v1/pipelines", "", nil, 400, "empty body"},
		{"unknown key", "POST", "/v1/pipelines", "name: x\njobs:\n  a:\n    stepz: []\n", nil, 400, "line 4"},
		{"cycle", "POST", "/v1/pipelines", "name: x\njobs:\n  a: { needs: [b], steps: [ 'true' ] }\n  b: { needs: [a], steps: [ 'true' ] }\n", nil, 400, "cycle"},
		{"not yaml", "POST", "/v1/pipelines", "{{{", nil, 400, "line"},
		{"too large", "POST", "/v1/pipelines", big, nil, 413, "larger than"},
		{"long idempotency key", "POST", "/v1/pipelines", twoJobs, map[string]string{"Idempotency-Key": strings.Repeat("k", 129)}, 400, "Idempotency-Key"},
		{"job without steps", "POST", "/v1/jobs", "name: j\n", nil, 400, "steps"},
		{"unknown pipeline", "GET", "/v1/pipelines/nope", "", nil, 404, "not found"},
		{"bad index", "GET", "/v1/pipelines?index=abc", "", nil, 400, "invalid index"},
		{"bad wait", "GET", "/v1/pipelines?index=1&wait=forever", "", nil, 400, "invalid wait"},
		{"cancel unknown", "POST", "/v1/pipelines/nope/cancel", "", nil, 404, "not found"},
		{"logs unknown pipeline", "GET", "/v1/pipelines/nope/logs", "", nil, 404, "not found"},
		{"unknown job", "GET", "/v1/jobs/nope", "", nil, 404, "not found"},
		{"logs unknown job", "GET", "/v1/jobs/nope/logs", "", nil, 404, "not found"},
		{"unknown node", "GET", "/v1/nodes/nope", "", nil, 404, "not found"},
		{"bad eval status", "GET", "/v1/evaluations?status=weird", "", nil, 400, "invalid status"},
		{"method not allowed", "DELETE", "/v1/pipelines", "", nil, 405, "not allowed"},
		{"unknown route", "GET", "/v1/nothing", "", nil, 404, "no such route"},
		{"node without id", "POST", "/v1/client/nodes", `{"name":"x"}`, nil, 400, "id is required"},
		{"node bad json", "POST", "/v1/client/nodes", `{"id":`, nil, 400, "invalid JSON"},
		{"node unknown field", "POST", "/v1/client/nodes", `{"id":"n","cpu":1}`, nil, 400, "unknown field"},
		{"node no resources", "POST", "/v1/client/nodes", `{"id":"n"}`, nil, 400, "resources"},
		{"allocs bad index", "GET", "/v1/client/nodes/n/allocations?index=-1", "", nil, 400, "invalid index"},
		{"alloc update empty", "POST", "/v1/client/allocations", `[]`, nil, 400, "no allocation updates"},
		{"alloc update no id", "POST", "/v1/client/allocations", `[{"client_status":"running"}]`, nil, 400, "alloc_id"},
		{"alloc update bad state", "POST", "/v1/client/allocations", `[{"alloc_id":"x","job_state":"CANCELLED"}]`, nil, 400, "job_state"},
		{"alloc update bad cause", "POST", "/v1/client/allocations", `[{"alloc_id":"x","job_state":"FAILED","cause":"node-lost"}]`, nil, 400, "updates[0].cause \"node-lost\""},
		{"alloc update cause not failed", "POST", "/v1/client/allocations", `[{"alloc_id":"x","job_state":"RUNNING","cause":"worker-lost"}]`, nil, 400, "job_state FAILED"},
		{"logs no job", "POST", "/v1/client/logs", `[{"line":"x"}]`, nil, 400, "job_id"},
		{"logs bad json", "POST", "/v1/client/logs", `[`, nil, 400, "invalid JSON"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var e map[string]string
			resp := ts.do(c.method, c.path, []byte(c.body), c.hdr, &e)
			if resp.StatusCode != c.code {
				t.Fatalf("HTTP %d, want %d (%v)", resp.StatusCode, c.code, e)
			}
			if !strings.Contains(e["error"], c.contains) {
				t.Fatalf("error %q does not mention %q", e["error"], c.contains)
			}
		})
	}
	var list []api.PipelineStub
	ts.do("GET", "/v1/pipelines", nil, nil, &list)
	if len(list) != 0 {
		t.Fatalf("bad input wrote %d pipelines", len(list))
	}
}
