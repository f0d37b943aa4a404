package client

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/ciplat/ciplat/api"
	"github.com/ciplat/ciplat/drivers"
	"github.com/ciplat/ciplat/drivers/mock"
	"github.com/ciplat/ciplat/gossip"
)

func (s *fakeServer) heartbeat(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.heartbeatCount++
	st := s.heartbeatStatus
	s.changedLocked(false)
	s.mu.Unlock()
	if st == "" {
		st = api.NodeStatusReady
	}
	writeJSON(w, &api.NodeHeartbeat{Status: st, HeartbeatTTL: "90ms"})
}

func (s *fakeServer) gossip(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	info := &api.GossipInfo{Servers: slices.Clone(s.gossipServers)}
	s.mu.Unlock()
	writeJSON(w, info)
}

func shortHeartbeat(c *Client) { c.heartbeatInterval = 30 * time.Millisecond }

// TestClient_Heartbeat follows the servers' TTL (a third of it) and
// registers again when the servers say the node is down.
func TestClient_Heartbeat(t *testing.T) {
	srv := newFakeServer(t)
	startClient(t, srv, "", map[string]drivers.Driver{"mock": mock.New(mock.Config{})}, shortHeartbeat)
	srv.waitFor(t, "a few heartbeats", func() bool { return srv.heartbeatCount >= 5 })
	srv.mu.Lock()
	if len(srv.nodes) != 1 {
		t.Fatalf("%d registrations while the node is ready, want 1", len(srv.nodes))
	}
	srv.heartbeatStatus = api.NodeStatusDown
	srv.mu.Unlock()
	srv.waitFor(t, "a registration after the node was declared down", func() bool { return len(srv.nodes) >= 2 })
}

// TestClient_DropsAllocationsMovedAway: when the node comes back after it
// was declared down, its allocations were marked lost and are no longer
// listed to it: the client destroys their workers instead of running them
// on, and never starts them again.
func TestClient_DropsAllocationsMovedAway(t *testing.T) {
	srv := newFakeServer(t)
	d := mock.New(mock.Config{})
	h := startClient(t, srv, "", map[string]drivers.Driver{"mock": d})
	srv.addAlloc(testAlloc(h.c.NodeID(), "a1", "", api.StepSpec{Name: "wait", Run: "echo waiting\nsleep 1h"}))
	srv.waitLogs(t, 1)

	// The servers lost the node: the allocation is lost and left the list.
	srv.mu.Lock()
	srv.allocs = nil
	srv.changedLocked(true)
	srv.mu.Unlock()
	final := srv.waitFinal(t, "a1")
	if final.ClientStatus != api.AllocClientComplete || final.JobState != "" {
		t.Fatalf("final report %+v: want complete with no job state (the job moved on)", final)
	}
	srv.waitFor(t, "the worker destroyed", func() bool { return d.Stats().Destroyed == 1 })
	if st := d.Stats(); st.Created != 1 || st.Running != 0 {
		t.Fatalf("driver stats %+v", st)
	}
}

// fastPool shortens memberlist's timings for loopback tests.
func fastPool(mc *memberlist.Config) {
	mc.ProbeInterval = 200 * time.Millisecond
	mc.ProbeTimeout = 150 * time.Millisecond
	mc.GossipInterval = 20 * time.Millisecond
	mc.PushPullInterval = time.Second
}

func newGossipPool(t *testing.T, role, nodeID string) *gossip.Pool {
	t.Helper()
	p, err := gossip.New(gossip.Config{Name: gossip.NewName(role), Role: role, NodeID: nodeID, Local: true, Tune: fastPool})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Shutdown() })
	return p
}

// TestClient_Gossip: a client given only the servers' HTTP address learns
// the pool's address from them, joins, and publishes its node record;
// the record's load follows what the client runs.
func TestClient_Gossip(t *testing.T) {
	srv := newFakeServer(t)
	server := newGossipPool(t, gossip.RoleServer, "")
	srv.mu.Lock()
	srv.gossipServers = []string{server.Addr()}
	srv.mu.Unlock()
	var pool *gossip.Pool
	h := startClient(t, srv, "", map[string]drivers.Driver{"mock": mock.New(mock.Config{})}, func(c *Client) {
		pool = newGossipPool(t, gossip.RoleClient, c.NodeID())
		c.cfg.Gossip = pool
		c.cfg.Reserved = api.Resources{CPU: 250, MemoryMB: 128}
	})
	id := h.c.NodeID()
	wait := func(what string, cond func(*gossip.NodeRecord) bool) *gossip.NodeRecord {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for {
			if r := server.Record(id); r != nil && cond(r) {
				return r
			}
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s; record %+v", what, server.Record(id))
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	r := wait("the record", func(*gossip.NodeRecord) bool { return true })
	if r.Name != "build-1" || r.Labels["zone"] != "a" || r.Reserved.CPU != 250 || r.Resources.CPU <= 0 ||
		!r.Drivers["mock"].Healthy || r.Member != pool.Name() {
		t.Fatalf("record = %+v", r)
	}
	a := testAlloc(id, "a1", "", api.StepSpec{Name: "wait", Run: "echo waiting\nsleep 1h"})
	a.Resources = api.Resources{CPU: 500, MemoryMB: 256}
	srv.addAlloc(a)
	wait("the load of the running allocation", func(r *gossip.NodeRecord) bool { return r.Load.Allocs == 1 && r.Load.CPU == 500 })
	srv.setAlloc("a1", func(a *api.Allocation) { a.DesiredStatus = api.AllocDesiredStop })
	wait("the load back to zero", func(r *gossip.NodeRecord) bool { return r.Load.Allocs == 0 })
}

// TestNewAPIClient_Failover: requests go to the next server when the
// current one is unreachable or has no leader, and stay there.
func TestNewAPIClient_Failover(t *testing.T) {
	var hitsA, hitsB atomic.Int32
	a := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hitsA.Add(1)
		writeJSON(w, &api.NodeHeartbeat{Status: "ready"})
	}))
	defer a.Close()
	noLeader := atomic.Bool{}
	b := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hitsB.Add(1)
		if noLeader.Load() {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"error":"no cluster leader"}`))
			return
		}
		writeJSON(w, &api.NodeHeartbeat{Status: "ready"})
	}))
	defer b.Close()
	// A dead server: a port nothing listens on.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()

	c, err := NewAPIClient([]string{dead, b.URL, a.URL})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for range 3 {
		if _, err := c.HeartbeatNode(ctx, "n1"); err != nil { // a POST: resent only because it never left
			t.Fatalf("heartbeat with the first server dead: %v", err)
		}
	}
	if hitsB.Load() != 3 || hitsA.Load() != 0 {
		t.Fatalf("hits: b %d, a %d; want the 3 on b (the first living server, kept)", hitsB.Load(), hitsA.Load())
	}
	noLeader.Store(true)
	if _, err := c.HeartbeatNode(ctx, "n1"); err != nil {
		t.Fatalf("heartbeat with b leaderless: %v", err)
	}
	if hitsA.Load() != 1 {
		t.Fatalf("a got %d requests, want 1 (b answered 503)", hitsA.Load())
	}
	a.Close()
	// A write on a connection that broke is not resent (it may have been
	// applied): the first call may fail with the broken connection; the
	// next dials, and fails over.
	_, _ = c.HeartbeatNode(ctx, "n1")
	_, err = c.HeartbeatNode(ctx, "n1")
	if !api.IsStatus(err, http.StatusServiceUnavailable) {
		t.Fatalf("every server down or leaderless: %v, want the last 503", err)
	}

	if _, err := NewAPIClient(nil); err == nil {
		t.Fatal("no servers: want an error")
	}
	if _, err := NewAPIClient([]string{"http://"}); err == nil {
		t.Fatal("a bad address: want an error")
	}
}
