package server

import (
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/ciplat/ciplat/fsm/structs"
)

// takeReady dequeues the n ready evaluations by hand (no worker runs) and
// acks them, as a worker that found no node would; it returns their IDs.
func takeReady(t *testing.T, ts *testServer, n int) []string {
	t.Helper()
	var out []string
	for range n {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		e, token, err := ts.srv.broker.Dequeue(ctx)
		cancel()
		if err != nil {
			t.Fatalf("dequeue: %v", err)
		}
		if err := ts.srv.broker.Ack(e.ID, token); err != nil {
			t.Fatal(err)
		}
		out = append(out, e.ID)
	}
	return out
}

// TestServer_UnblockTargeted: blocked evaluations are offered again only
// when a change may let them run. A job blocked for lack of cpu comes back
// when an allocation ends; a job no node has the driver for does not, and
// comes back when a node with that driver joins. Scheduling is paused so
// the offers stay in the broker, where the test reads them.
func TestServer_UnblockTargeted(t *testing.T) {
	ts := newSchedServer(t, "", nil)
	addNode(ts, "n1", 4000, 4096)
	a := waitJob(ts, submitJob(ts, "a", 50, 3000, 512), "scheduled", isState(structs.JobScheduled))
	var p struct {
		Jobs []*jobJSON `json:"jobs"`
	}
	resp := ts.do("POST", "/v1/jobs", []byte("name: d\ndriver: docker\nresources: {cpu: 100, memory: 64}\nsteps: ['true']\n"), nil, &p)
	if resp.StatusCode != 201 || len(p.Jobs) != 1 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("submit d: HTTP %d %s", resp.StatusCode, b)
	}
	blockedBy := func(why string) func(*jobJSON) bool {
		return func(j *jobJSON) bool {
			return strings.HasPrefix(j.Reason, "no node can run it") && strings.Contains(j.Explain, why)
		}
	}
	d := waitJob(ts, p.Jobs[0].ID, "blocked on its driver", blockedBy("docker"))
	b := waitJob(ts, submitJob(ts, "b", 50, 2000, 512), "blocked on cpu", blockedBy("cpu"))

	// Pausing writes the configuration, which offers every blocked
	// evaluation once: take those offers out of the way.
	unblocked := ts.srv.metrics.evalsUnblocked.Load()
	pauseScheduling(ts)
	waitFor(t, "the configuration change to offer both blocked evaluations", func() bool {
		return ts.srv.metrics.evalsUnblocked.Load() >= unblocked+2 && ts.srv.broker.Stats().Unacked == 0
	})
	takeReady(t, ts, ts.srv.broker.Stats().Ready)

	// An allocation ends: cpu frees on n1. Only b may run now.
	unblocked = ts.srv.metrics.evalsUnblocked.Load()
	reportAlloc(ts, a.AllocID, structs.AllocClientComplete, structs.JobSucceeded)
	waitFor(t, "an offer after the allocation ended", func() bool { return ts.srv.broker.Stats().Ready > 0 })
	if got := takeReady(t, ts, ts.srv.broker.Stats().Ready); len(got) != 1 || got[0] != b.EvalID {
		t.Fatalf("after an allocation ended the broker offered %v, want only b's evaluation %s (d waits for a driver no allocation frees)", got, b.EvalID)
	}
	if n := ts.srv.metrics.evalsUnblocked.Load() - unblocked; n != 1 {
		t.Fatalf("%d evaluations unblocked by the allocation change, want 1", n)
	}

	// A node with docker joins: d may run now (and b, which fits there).
	node := structs.Node{ID: "n2", Name: "n2", Resources: structs.Resources{CPU: 8000, MemoryMB: 8192},
		Drivers: map[string]*structs.DriverInfo{"docker": {Detected: true, Healthy: true}, "exec": {Detected: true, Healthy: true}}}
	body, _ := json.Marshal(node)
	if resp := ts.do("POST", "/v1/client/nodes", body, nil, nil); resp.StatusCode != 200 {
		t.Fatalf("register n2: HTTP %d", resp.StatusCode)
	}
	waitFor(t, "offers after n2 joined", func() bool { return ts.srv.broker.Stats().Ready >= 2 })
	if got := takeReady(t, ts, ts.srv.broker.Stats().Ready); !sameSet(got, []string{d.EvalID, b.EvalID}) {
		t.Fatalf("after n2 joined the broker offered %v, want d's %s and b's %s", got, d.EvalID, b.EvalID)
	}

	// Resumed, the workers place d on the node with its driver.
	if _, code, body := setSchedConfig(ts, `{"workers": 2}`, ""); code != 200 {
		t.Fatalf("resume scheduling: HTTP %d %s", code, body)
	}
	if got := waitJob(ts, d.ID, "scheduled", isState(structs.JobScheduled)); got.NodeID != "n2" {
		t.Fatalf("d placed on %s, want n2", got.NodeID)
	}
}

// TestServer_MissedUnblock: a worker whose plan found no node checks what
// changed after its snapshot before it leaves the evaluation blocked: a
// node that joined meanwhile and could run the job makes it schedule the
// evaluation again; a node that could not, or nothing, does not.
func TestServer_MissedUnblock(t *testing.T) {
	ts := newSchedServer(t, "", nil)
	addNode(ts, "n1", 4000, 4096)
	pauseScheduling(ts) // the evaluation stays with the test
	var p struct {
		Jobs []*jobJSON `json:"jobs"`
	}
	if resp := ts.do("POST", "/v1/jobs", []byte("name: d\ndriver: docker\nresources: {cpu: 100, memory: 64}\nsteps: ['true']\n"), nil, &p); resp.StatusCode != 201 {
		t.Fatalf("submit d: HTTP %d", resp.StatusCode)
	}
	st := ts.srv.State()
	e, err := st.EvalByID(nil, p.Jobs[0].EvalID)
	if err != nil || e == nil {
		t.Fatalf("d's evaluation: %v, %v", e, err)
	}
	w := &evalWork{ev: e, snapIndex: marksOf(nil, st).latest()}
	if ts.srv.missedUnblock(w) {
		t.Fatal("nothing changed after the snapshot, yet missedUnblock says schedule again")
	}
	register := func(id string, drivers ...string) {
		n := structs.Node{ID: id, Name: id, Resources: structs.Resources{CPU: 4000, MemoryMB: 4096}, Drivers: map[string]*structs.DriverInfo{}}
		for _, d := range drivers {
			n.Drivers[d] = &structs.DriverInfo{Detected: true, Healthy: true}
		}
		body, _ := json.Marshal(n)
		if resp := ts.do("POST", "/v1/client/nodes", body, nil, nil); resp.StatusCode != 200 {
			t.Fatalf("register %s: HTTP %d", id, resp.StatusCode)
		}
	}
	register("n2", "exec")
	if ts.srv.missedUnblock(w) {
		t.Fatal("a node without docker joined after the snapshot, yet missedUnblock says schedule again")
	}
	register("n3", "docker")
	if !ts.srv.missedUnblock(w) {
		t.Fatal("a node with docker joined after the snapshot, yet missedUnblock leaves the evaluation blocked")
	}
	if w.snapIndex = marksOf(nil, ts.srv.State()).latest(); ts.srv.missedUnblock(w) {
		t.Fatal("a snapshot that shows n3 missed nothing")
	}
}
