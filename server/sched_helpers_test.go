package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/ciplat/ciplat/fsm/state"
	"github.com/ciplat/ciplat/fsm/structs"
	"github.com/ciplat/ciplat/server/broker"
	"github.com/ciplat/ciplat/server/httpapi"
)

// newSchedServer is newTestServer with the scheduling options a test sets.
func newSchedServer(t *testing.T, dir string, opt func(*Config)) *testServer {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	cfg := Config{
		DataDir:   dir,
		RaftAddr:  "127.0.0.1:0",
		Bootstrap: true,
		Dev:       true,
		Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
		// Test nodes send no heartbeats: keep them up however slow the run.
		Nodes: NodesConfig{HeartbeatTTL: time.Hour},
	}
	if opt != nil {
		opt(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatalf("start server: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := s.WaitForLeader(ctx); err != nil {
		t.Fatal(err)
	}
	ts := &testServer{t: t, srv: s, web: httptest.NewServer(s.HTTPHandler()), dir: dir}
	t.Cleanup(func() {
		ts.web.Close()
		_ = s.Shutdown()
	})
	return ts
}

// jobJSON is GET /v1/jobs/{id}.
type jobJSON struct {
	structs.Job
	Explain string `json:"explain"`
}

// addNode registers a ready node with the exec and mock drivers healthy.
func addNode(ts *testServer, id string, cpu, mem int) {
	ts.t.Helper()
	n := structs.Node{ID: id, Name: id, Resources: structs.Resources{CPU: cpu, MemoryMB: mem},
		Drivers: map[string]*structs.DriverInfo{
			"exec": {Detected: true, Healthy: true},
			"mock": {Detected: true, Healthy: true},
		}}
	b, _ := json.Marshal(n)
	if resp := ts.do("POST", "/v1/client/nodes", b, nil, nil); resp.StatusCode != 200 {
		ts.t.Fatalf("register node %s: HTTP %d", id, resp.StatusCode)
	}
}

// jobSpecYAML is the body of POST /v1/jobs for one job.
func jobSpecYAML(name string, prio, cpu, mem int) string {
	return fmt.Sprintf("name: %s\npriority: %d\nresources: { cpu: %d, memory: %d }\nsteps: [ 'true' ]\n", name, prio, cpu, mem)
}

// submitJob submits one job and returns its ID.
func submitJob(ts *testServer, name string, prio, cpu, mem int) string {
	ts.t.Helper()
	var p struct {
		Jobs []*jobJSON `json:"jobs"`
	}
	resp := ts.do("POST", "/v1/jobs", []byte(jobSpecYAML(name, prio, cpu, mem)), nil, &p)
	if resp.StatusCode != 201 || len(p.Jobs) != 1 {
		b, _ := io.ReadAll(resp.Body)
		ts.t.Fatalf("submit %s: HTTP %d %s", name, resp.StatusCode, b)
	}
	return p.Jobs[0].ID
}

// waitJob follows the job with blocking queries until pred holds.
func waitJob(ts *testServer, id, what string, pred func(*jobJSON) bool) *jobJSON {
	ts.t.Helper()
	var index uint64
	deadline := time.Now().Add(20 * time.Second)
	var last *jobJSON
	for time.Now().Before(deadline) {
		var j jobJSON
		resp := ts.do("GET", fmt.Sprintf("/v1/jobs/%s?index=%d&wait=5s", id, index), nil, nil, &j)
		if resp.StatusCode != 200 {
			ts.t.Fatalf("get job %s: HTTP %d", id, resp.StatusCode)
		}
		last = &j
		if pred(&j) {
			return &j
		}
		index, _ = strconv.ParseUint(resp.Header.Get("X-Ciplat-Index"), 10, 64)
	}
	ts.t.Fatalf("timed out waiting for job %s to be %s; last: state %s, reason %q", id, what, last.State, last.Reason)
	return nil
}

func isState(s structs.JobState) func(*jobJSON) bool {
	return func(j *jobJSON) bool { return j.State == s }
}

// setSchedConfig PUTs a scheduler configuration and returns the answer:
// the configuration, the status and the body (the error message on error).
func setSchedConfig(ts *testServer, body, query string) (*httpapi.SchedulerConfigView, int, string) {
	ts.t.Helper()
	resp := ts.do("PUT", "/v1/operator/scheduler"+query, []byte(body), nil, nil)
	b, _ := io.ReadAll(resp.Body)
	var v httpapi.SchedulerConfigView
	if resp.StatusCode != 200 {
		var e map[string]string
		_ = json.Unmarshal(b, &e)
		return &v, resp.StatusCode, e["error"]
	}
	if err := json.Unmarshal(b, &v); err != nil {
		ts.t.Fatal(err)
	}
	return &v, resp.StatusCode, string(b)
}

// pauseScheduling stores workers=0 and waits until the worker loop has
// seen that configuration and every worker goroutine ended, so a test can
// take evaluations from the broker by hand. Waiting for the workers gauge
// to read 0 was not enough: the gauge drops as soon as the loop cancels
// the workers, but a worker's stop reaches its feeder through another
// goroutine, so on a busy machine the feeder could still dequeue the
// evaluation the test submitted next (TestServer_Backpressure timed out
// "waiting for the broker to be full"). A worker ends only after its
// feeder stopped and its plans were decided.
func pauseScheduling(ts *testServer) {
	ts.t.Helper()
	if _, code, body := setSchedConfig(ts, `{"workers": 0}`, ""); code != 200 {
		ts.t.Fatalf("pause scheduling: HTTP %d %s", code, body)
	}
	// The PUT returned once applied here (the leader): state holds it.
	idx := ts.srv.State().Index(state.TableSchedulerConfig)
	waitFor(ts.t, "workers to stop", func() bool {
		return ts.srv.metrics.workersIndex.Load() >= idx && ts.srv.metrics.workersLive.Load() == 0
	})
}

// report sends a client update for an allocation.
func reportAlloc(ts *testServer, allocID, clientStatus string, js structs.JobState) {
	ts.t.Helper()
	b, _ := json.Marshal([]*structs.AllocUpdate{{AllocID: allocID, ClientStatus: clientStatus, JobState: js}})
	if resp := ts.do("POST", "/v1/client/allocations", b, nil, nil); resp.StatusCode != 200 {
		ts.t.Fatalf("alloc update: HTTP %d", resp.StatusCode)
	}
}

// dequeue takes the next ready evaluation from the broker by hand.
func dequeue(t *testing.T, b *broker.Broker) (*structs.Evaluation, uint64) {
	t.Helper()
	// A bound, not a pace: under -race on two busy cores a submit's
	// evaluation has taken over 5 s to reach the broker.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	e, token, err := b.Dequeue(ctx)
	if err != nil {
		t.Fatalf("dequeue: %v", err)
	}
	return e, token
}

// ids returns the evaluations' IDs.
func ids(evals []*structs.Evaluation) []string {
	out := make([]string, len(evals))
	for i, e := range evals {
		out[i] = e.ID
	}
	return out
}
