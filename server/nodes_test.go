package server

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/ciplat/ciplat/api"
	"github.com/ciplat/ciplat/fsm/structs"
	"github.com/ciplat/ciplat/gossip"
)

// fastGossip shortens memberlist's failure detection for loopback tests.
func fastGossip(mc *memberlist.Config) {
	mc.ProbeInterval = 200 * time.Millisecond
	mc.ProbeTimeout = 150 * time.Millisecond
	mc.SuspicionMult = 2
	mc.GossipInterval = 20 * time.Millisecond
	mc.PushPullInterval = time.Second
	mc.TCPTimeout = 500 * time.Millisecond
}

// newNodesTestServer is newTestServer with node settings.
func newNodesTestServer(t *testing.T, nodes NodesConfig) *testServer {
	t.Helper()
	dir := t.TempDir()
	s, err := New(Config{DataDir: dir, RaftAddr: "127.0.0.1:0", Bootstrap: true, Dev: true,
		Nodes: nodes, Logger: testLogger("s1")})
	if err != nil {
		t.Fatalf("start server: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := s.WaitForLeader(ctx); err != nil {
		t.Fatal(err)
	}
	ts := &testServer{t: t, srv: s, web: httptest.NewServer(s.HTTPHandler()), dir: dir}
	t.Cleanup(ts.stop)
	return ts
}

func (ts *testServer) node(id string) *api.Node {
	ts.t.Helper()
	var n api.Node
	if resp := ts.do("GET", "/v1/nodes/"+id, nil, nil, &n); resp.StatusCode != http.StatusOK {
		ts.t.Fatalf("get node %s: HTTP %d", id, resp.StatusCode)
	}
	return &n
}

// heartbeats sends a heartbeat for id every interval until the test ends
// or stop is closed.
func (ts *testServer) heartbeats(id string, every time.Duration, stop <-chan struct{}) {
	go func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
			}
			resp, err := http.Post(ts.web.URL+"/v1/client/nodes/"+id+"/heartbeat", "application/json", nil)
			if err != nil {
				return // the server is gone
			}
			resp.Body.Close()
		}
	}()
}

const longJob = `
name: long
jobs:
  build:
    retry: { attempts: 1, backoff: 10ms }
    reschedule: { delay: 10ms, max_delay: 10ms }
    steps: [ { name: s1, run: "sleep 600" } ]
`

// TestNodeLiveness_HeartbeatTTL: a node that stops heartbeating is marked
// down after the TTL; its running job is TERMINATED and rescheduled on
// another node; the node that keeps heartbeating stays ready.
func TestNodeLiveness_HeartbeatTTL(t *testing.T) {
	ts := newNodesTestServer(t, NodesConfig{HeartbeatTTL: 600 * time.Millisecond, MinNodeUpdateInterval: 50 * time.Millisecond})
	var hb api.NodeHeartbeat
	if resp := ts.do("POST", "/v1/client/nodes/nobody/heartbeat", nil, nil, &hb); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("heartbeat of an unknown node: HTTP %d, want 404", resp.StatusCode)
	}
	registerNode(ts, "n1")
	stop := make(chan struct{})
	ts.heartbeats("n1", 100*time.Millisecond, stop)
	p, code := submit(ts, longJob, nil)
	if code != http.StatusCreated {
		t.Fatalf("submit: HTTP %d", code)
	}
	a := pick(nodeAllocs(ts, "n1", allocFor("build")), "build")
	report(ts, &api.AllocUpdate{AllocID: a.ID, ClientStatus: api.AllocClientRunning, JobState: api.StateRunning})

	registerNode(ts, "n2")
	ts.heartbeats("n2", 100*time.Millisecond, nil)
	if resp := ts.do("POST", "/v1/client/nodes/n2/heartbeat", nil, nil, &hb); resp.StatusCode != http.StatusOK ||
		hb.Status != "ready" || hb.HeartbeatTTL != "600ms" {
		t.Fatalf("heartbeat: HTTP %d %+v", resp.StatusCode, hb)
	}
	// n1 stays ready while it heartbeats, well past the TTL.
	time.Sleep(time.Second)
	if n := ts.node("n1"); n.Status != api.NodeStatusReady {
		t.Fatalf("a heartbeating node went %s", n.Status)
	}

	close(stop) // n1 goes silent
	silent := time.Now()
	a2 := pick(nodeAllocs(ts, "n2", allocFor("build")), "build")
	t.Logf("from the last heartbeat to the new placement: %v", time.Since(silent))
	if a2.Attempt != 2 {
		t.Fatalf("rescheduled allocation: attempt %d, want 2", a2.Attempt)
	}
	n1 := ts.node("n1")
	if n1.Status != api.NodeStatusDown {
		t.Fatalf("n1 is %s, want down", n1.Status)
	}
	j := jobState(getPipeline(ts, p.ID), "build")
	if len(j.History) != 1 || j.History[0].State != api.StateTerminated || j.History[0].NodeID != "n1" ||
		!strings.Contains(j.History[0].Reason, "down") || j.History[0].Kind != "reschedule" || j.History[0].Cause != "node-lost" ||
		j.RescheduleAttempts != 1 || j.Attempt-1-j.Rescheduled != 0 {
		t.Fatalf("history = %+v (job %+v), want attempt 1 TERMINATED on n1 (node down), rescheduled without using the retry", j.History, j)
	}
	if j.NodeID != "n2" || j.State != api.StateScheduled {
		t.Fatalf("job now %s on %s, want SCHEDULED on n2", j.State, j.NodeID)
	}
	if n := ts.node("n2"); n.Status != api.NodeStatusReady {
		t.Fatalf("n2 (heartbeating) is %s", n.Status)
	}
	// A heartbeat from the down node tells it so; it registers again.
	if resp := ts.do("POST", "/v1/client/nodes/n1/heartbeat", nil, nil, &hb); resp.StatusCode != http.StatusOK || hb.Status != "down" {
		t.Fatalf("heartbeat of a down node: HTTP %d %+v", resp.StatusCode, hb)
	}
	registerNode(ts, "n1")
	if n := ts.node("n1"); n.Status != api.NodeStatusReady {
		t.Fatalf("re-registered node is %s", n.Status)
	}
	// Its old allocation is not listed to it any more: its client drops it.
	for _, al := range nodeAllocs(ts, "n1", func([]*api.Allocation) bool { return true }) {
		if al.ID == a.ID {
			t.Fatalf("the lost allocation is still listed to n1: %+v", al)
		}
	}
}

// gossipClient is a simulated client's gossip member.
func gossipClient(t *testing.T, nodeID string, cpu int, key []byte) *gossip.Pool {
	t.Helper()
	p, err := gossip.New(gossip.Config{Name: gossip.NewName("client"), Role: gossip.RoleClient, NodeID: nodeID,
		Local: true, Tune: fastGossip, SecretKey: key})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Shutdown() })
	p.SetLocal(gossipRecord(nodeID, cpu))
	return p
}

func gossipRecord(nodeID string, cpu int) *gossip.NodeRecord {
	return &gossip.NodeRecord{NodeID: nodeID, Name: "build-" + nodeID, OS: "linux", Arch: "amd64",
		Resources: gossip.Resources{CPU: cpu, MemoryMB: 4096}, Reserved: gossip.Resources{CPU: 100, MemoryMB: 128},
		Labels:  map[string]string{"zone": "b"},
		Drivers: map[string]gossip.DriverHealth{"exec": {Detected: true, Healthy: true}}}
}

// TestNodeLiveness_Gossip: the leader registers a node it only heard of in
// gossip, follows its capacity changes, marks it down as soon as its
// member fails (long before the heartbeat TTL), and ready again when a new
// member speaks for it.
func TestNodeLiveness_Gossip(t *testing.T) {
	ts := newNodesTestServer(t, NodesConfig{GossipTune: fastGossip, HeartbeatTTL: time.Minute, MinNodeUpdateInterval: 50 * time.Millisecond})
	var info gossipInfo
	if resp := ts.do("GET", "/v1/agent/gossip", nil, nil, &info); resp.StatusCode != http.StatusOK || len(info.Servers) != 1 {
		t.Fatalf("GET /v1/agent/gossip: HTTP %d %+v", resp.StatusCode, info)
	}
	c := gossipClient(t, "g1", 3000, nil)
	if _, err := c.Join(info.Servers); err != nil {
		t.Fatal(err)
	}
	var n *structs.Node
	nodeIs := func(what string, cond func(*structs.Node) bool) {
		t.Helper()
		waitFor(t, what, func() bool {
			n, _ = ts.srv.State().NodeByID(nil, "g1")
			return n != nil && cond(n)
		})
	}
	nodeIs("the gossip-only node registered", func(n *structs.Node) bool { return n.Status == structs.NodeStatusReady })
	if n.Name != "build-g1" || n.Resources.CPU != 3000 || n.Reserved.CPU != 100 || n.Attributes["label.zone"] != "b" ||
		n.Attributes["os"] != "linux" || !n.Drivers["exec"].Healthy || !n.Eligible {
		t.Fatalf("node from gossip: %+v", n)
	}

	r := gossipRecord("g1", 6000)
	r.Load = gossip.Load{Allocs: 3, CPU: 1500}
	c.SetLocal(r)
	nodeIs("the capacity change committed", func(n *structs.Node) bool { return n.Resources.CPU == 6000 })
	before := n.ModifyIndex
	r.Load = gossip.Load{Allocs: 1, CPU: 500} // load alone is not written
	c.SetLocal(r)
	time.Sleep(300 * time.Millisecond)
	if n, _ := ts.srv.State().NodeByID(nil, "g1"); n.ModifyIndex != before {
		t.Fatalf("a load change was written to Raft (modify %d → %d)", before, n.ModifyIndex)
	}

	died := time.Now()
	_ = c.Shutdown()
	nodeIs("the node down after its member failed", func(n *structs.Node) bool { return n.Status == structs.NodeStatusDown })
	t.Logf("member failure → node down in %v (heartbeat TTL 1m)", time.Since(died))

	c2 := gossipClient(t, "g1", 6000, nil)
	if _, err := c2.Join(info.Servers); err != nil {
		t.Fatal(err)
	}
	nodeIs("the node ready again with a new member", func(n *structs.Node) bool { return n.Status == structs.NodeStatusReady })
}

// TestNodeLiveness_GossipEncrypted: with a key, a client member that has it
// registers; one with another key is not heard of.
func TestNodeLiveness_GossipEncrypted(t *testing.T) {
	key := []byte("0123456789abcdef")
	ts := newNodesTestServer(t, NodesConfig{GossipKey: key, GossipTune: fastGossip, MinNodeUpdateInterval: 50 * time.Millisecond})
	good := gossipClient(t, "good", 2000, key)
	if _, err := good.Join([]string{ts.srv.GossipAddr()}); err != nil {
		t.Fatalf("join with the key: %v", err)
	}
	bad := gossipClient(t, "bad", 2000, []byte("fedcba9876543210"))
	if _, err := bad.Join([]string{ts.srv.GossipAddr()}); err == nil {
		t.Fatal("a member with the wrong key joined")
	}
	waitFor(t, "the node with the key", func() bool { n, _ := ts.srv.State().NodeByID(nil, "good"); return n != nil })
	if n, _ := ts.srv.State().NodeByID(nil, "bad"); n != nil {
		t.Fatalf("a node with the wrong key registered: %+v", n)
	}
}

// TestNodeDrain: a drained node finishes what it runs and takes nothing
// new; once empty the drain completes and the node stays ineligible. With
// a deadline, what still runs is stopped and rescheduled, without using up
// a retry.
func TestNodeDrain(t *testing.T) {
	ts := newNodesTestServer(t, NodesConfig{})
	registerNode(ts, "n1")
	p1, _ := submit(ts, strings.Replace(longJob, "long", "first", 1), nil)
	a1 := pick(nodeAllocs(ts, "n1", allocFor("build")), "build")
	report(ts, &api.AllocUpdate{AllocID: a1.ID, ClientStatus: api.AllocClientRunning, JobState: api.StateRunning})
	registerNode(ts, "n2")

	var n api.Node
	resp := ts.do("POST", "/v1/nodes/n1/drain", []byte(`{"enable":true}`), nil, &n)
	if resp.StatusCode != http.StatusOK || !n.Drain || !n.DrainDeadline.IsZero() {
		t.Fatalf("drain: HTTP %d %+v", resp.StatusCode, n)
	}
	// New work goes to n2 only.
	p2, _ := submit(ts, strings.Replace(longJob, "long", "second", 1), nil)
	pick(nodeAllocs(ts, "n2", allocFor("build")), "build")
	if j := jobState(getPipeline(ts, p2.ID), "build"); j.NodeID != "n2" {
		t.Fatalf("second job placed on %s, want n2", j.NodeID)
	}
	// The running job is left alone and finishes.
	if j := jobState(getPipeline(ts, p1.ID), "build"); j.State != api.StateRunning || j.NodeID != "n1" {
		t.Fatalf("the drained node's job: %s on %s", j.State, j.NodeID)
	}
	report(ts, &api.AllocUpdate{AllocID: a1.ID, ClientStatus: api.AllocClientComplete, JobState: api.StateSucceeded})
	waitFor(t, "the drain to complete", func() bool { n := ts.node("n1"); return !n.Drain })
	if n := ts.node("n1"); n.Eligible {
		t.Fatalf("a completed drain left the node eligible: %+v", n)
	}
	if got := getPipeline(ts, p1.ID); got.State != api.StateSucceeded {
		t.Fatalf("the drained node's pipeline: %s", got.State)
	}
	// Eligible again by the operator.
	if resp := ts.do("POST", "/v1/nodes/n1/eligibility", []byte(`{"eligible":true}`), nil, &n); resp.StatusCode != http.StatusOK || !n.Eligible {
		t.Fatalf("eligibility: HTTP %d %+v", resp.StatusCode, n)
	}

	// A deadline: the job still running on n2 is moved to n1.
	a2 := pick(nodeAllocs(ts, "n2", allocFor("build")), "build")
	report(ts, &api.AllocUpdate{AllocID: a2.ID, ClientStatus: api.AllocClientRunning, JobState: api.StateRunning})
	if resp := ts.do("POST", "/v1/nodes/n2/drain", []byte(`{"enable":true,"deadline":"300ms"}`), nil, &n); resp.StatusCode != http.StatusOK ||
		n.DrainDeadline.IsZero() {
		t.Fatalf("drain with a deadline: HTTP %d %+v", resp.StatusCode, n)
	}
	moved := pick(nodeAllocs(ts, "n1", allocFor("build")), "build")
	j := jobState(getPipeline(ts, p2.ID), "build")
	if moved.Attempt != 2 || j.Rescheduled != 1 || len(j.History) != 1 || j.History[0].State != api.StateTerminated {
		t.Fatalf("moved job: alloc attempt %d, job %+v", moved.Attempt, j)
	}
	old := nodeAllocs(ts, "n2", func([]*api.Allocation) bool { return true })
	if len(old) != 1 || old[0].ID != a2.ID || old[0].DesiredStatus != api.AllocDesiredStop {
		t.Fatalf("the drained allocation: %+v, want desired stop", old)
	}
	// The client reports the stop; the drain completes.
	report(ts, &api.AllocUpdate{AllocID: a2.ID, ClientStatus: api.AllocClientComplete})
	waitFor(t, "the second drain to complete", func() bool { return !ts.node("n2").Drain })

	// Bad input.
	for _, tt := range []struct{ path, body string }{
		{"/v1/nodes/n1/drain", `{"enable":true,"deadline":"soon"}`},
		{"/v1/nodes/n1/drain", `{"deadline":"5m"}`},
		{"/v1/nodes/n1/eligibility", `{}`},
		{"/v1/nodes/n1/drain", `{"enable":true,"typo":1}`},
	} {
		var e map[string]string
		if resp := ts.do("POST", tt.path, []byte(tt.body), nil, &e); resp.StatusCode != http.StatusBadRequest || e["error"] == "" {
			t.Errorf("POST %s %s: HTTP %d %v, want 400", tt.path, tt.body, resp.StatusCode, e)
		}
	}
	if resp := ts.do("POST", "/v1/nodes/zzz/drain", []byte(`{"enable":true}`), nil, nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("drain an unknown node: HTTP %d", resp.StatusCode)
	}
	b, _ := json.Marshal(map[string]bool{"enable": false})
	if resp := ts.do("POST", "/v1/nodes/n2/drain", b, nil, &n); resp.StatusCode != http.StatusOK || !n.Eligible {
		t.Errorf("end a drain: HTTP %d %+v", resp.StatusCode, n)
	}

}
