package server

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ciplat/ciplat/api"
)

const oneJob = "name: c\njobs:\n  a: { steps: [ 'true' ] }\n"

// TestCluster_ElectionAndForwarding: three servers bootstrap from serf with
// -bootstrap-expect 3, elect one leader, and any server takes writes and
// leader-consistent reads; ?stale answers locally with its headers.
func TestCluster_ElectionAndForwarding(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	l := c.waitStable(3)
	fs := c.followers()
	if len(fs) != 2 {
		t.Fatalf("%d followers, want 2", len(fs))
	}
	for _, cs := range c.servers {
		// A follower learns the configuration from the log the leader
		// replicates, a moment after it learns who leads.
		var peers []string
		waitForTB(t, cs.name+" to list 3 peers", func() bool {
			peers = nil
			cs.do("GET", "/v1/status/peers", nil, nil, &peers)
			return len(peers) == 3
		})
		var leader string
		cs.do("GET", "/v1/status/leader", nil, nil, &leader)
		if leader != l.raftAddr {
			t.Fatalf("%s: leader %q, want %q", cs.name, leader, l.raftAddr)
		}
	}

	// A write to a follower is forwarded to the leader.
	id, code, err := fs[0].submitTo(oneJob, "")
	if err != nil || code != http.StatusCreated {
		t.Fatalf("submit to follower: %d %v", code, err)
	}
	// A default read on the other follower is the leader's: it sees the
	// write at once.
	var p api.Pipeline
	if resp := fs[1].do("GET", "/v1/pipelines/"+id, nil, nil, &p); resp.StatusCode != 200 || p.ID != id {
		t.Fatalf("read on follower: HTTP %d %+v", resp.StatusCode, p)
	}
	// A stale read is answered locally, with how current it is.
	c.waitConverged([]string{id})
	resp := fs[1].do("GET", "/v1/pipelines?stale", nil, nil, nil)
	if resp.Header.Get(knownLeaderHeader) != "true" {
		t.Fatalf("stale read: %s = %q", knownLeaderHeader, resp.Header.Get(knownLeaderHeader))
	}
	if ms, err := strconv.Atoi(resp.Header.Get(lastContactHeader)); err != nil || ms < 0 || ms > 5000 {
		t.Fatalf("stale read: %s = %q", lastContactHeader, resp.Header.Get(lastContactHeader))
	}

	// Members and the Raft configuration agree on one leader.
	var members []memberView
	fs[0].do("GET", "/v1/agent/members", nil, nil, &members)
	leaders := 0
	for _, m := range members {
		if m.Status != "alive" || !m.Voter {
			t.Fatalf("member %+v", m)
		}
		if m.Leader {
			leaders++
			if m.Name != l.name || m.RaftState != "Leader" {
				t.Fatalf("leader member %+v, want %s", m, l.name)
			}
		}
	}
	if len(members) != 3 || leaders != 1 {
		t.Fatalf("members %+v", members)
	}
	var rc raftConfigView
	fs[1].do("GET", "/v1/operator/raft/configuration", nil, nil, &rc)
	if len(rc.Servers) != 3 {
		t.Fatalf("raft configuration %+v", rc)
	}
}

// TestCluster_FiveServersJoinAndLeave: a five-server cluster; a server
// that joins later (-bootstrap-expect agrees, but a cluster exists) is added
// as a voter; a follower and then the leader leave gracefully and are
// removed; writes continue throughout.
func TestCluster_FiveServersJoinAndLeave(t *testing.T) {
	c := newTestCluster(t, 5, nil)
	c.waitStable(5)

	late := &clusterServer{t: t, name: "s6", dir: t.TempDir(), expect: 5,
		httpAddr: "127.0.0.1:0", raftAddr: "127.0.0.1:0", serfAddr: "127.0.0.1:0"}
	late.start()
	c.servers = append(c.servers, late)
	if _, err := late.srv.Join([]string{c.servers[0].serfAddr}); err != nil {
		t.Fatal(err)
	}
	c.waitStable(6)
	if id, code, err := late.submitTo(oneJob, ""); err != nil || code != 201 || id == "" {
		t.Fatalf("submit to the new server: %d %v", code, err)
	}

	// A follower leaves: it is removed from the voters.
	f := c.followers()[0]
	f.leave()
	l := c.waitStable(5)
	waitForTB(t, f.name+" to be seen leaving", func() bool {
		var members []memberView
		l.do("GET", "/v1/agent/members", nil, nil, &members)
		for _, m := range members {
			if m.Name == f.name {
				return m.Status == "left" && !m.Voter
			}
		}
		return false
	})

	// The leader leaves: leadership moves, it is removed, writes go on.
	start := time.Now()
	l.leave()
	nl := c.waitStable(4)
	t.Logf("leader %s left; %s leads after %s", l.name, nl.name, time.Since(start).Round(time.Millisecond))
	if _, code, err := c.followers()[0].submitTo(oneJob, ""); err != nil || code != 201 {
		t.Fatalf("submit after the leader left: %d %v", code, err)
	}
}

// TestCluster_LeaderFailure: the leader dies (no leave). A new leader is
// elected, writes continue on any server, a submit retried with the same
// Idempotency-Key on another server yields the first pipeline, the dead
// server stays a voter until remove-peer.
func TestCluster_LeaderFailure(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	l := c.waitStable(3)
	first, code, err := l.submitTo(oneJob, "key-1")
	if err != nil || code != 201 {
		t.Fatalf("submit: %d %v", code, err)
	}
	c.waitConverged([]string{first})

	start := time.Now()
	l.kill()
	var nl *clusterServer
	waitForTB(t, "a new leader", func() bool { nl = c.leader(); return nl != nil })
	t.Logf("leader %s killed; %s leads after %s", l.name, nl.name, time.Since(start).Round(time.Millisecond))

	// The retry lands on a follower of the new leader.
	var other *clusterServer
	for _, cs := range c.running() {
		if cs != nl {
			other = cs
		}
	}
	again, code, err := other.submitTo(oneJob, "key-1")
	if err != nil || code != http.StatusOK || again != first {
		t.Fatalf("retry with the same key on %s: HTTP %d id %s err %v, want 200 and %s", other.name, code, again, err, first)
	}
	second, code, err := other.submitTo(oneJob, "key-2")
	if err != nil || code != 201 {
		t.Fatalf("new submit after failover: %d %v", code, err)
	}
	c.waitConverged([]string{first, second})

	// The dead server is still a voter: only an operator removes it.
	var peers []string
	nl.do("GET", "/v1/status/peers", nil, nil, &peers)
	if len(peers) != 3 {
		t.Fatalf("peers after a failure: %v, want the dead one kept", peers)
	}
	resp := other.do("DELETE", "/v1/operator/raft/peer?id="+l.name, nil, nil, nil)
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("remove-peer via a follower: HTTP %d %s", resp.StatusCode, b)
	}
	nl.do("GET", "/v1/status/peers", nil, nil, &peers)
	if len(peers) != 2 {
		t.Fatalf("peers after remove-peer: %v", peers)
	}
	if resp := other.do("DELETE", "/v1/operator/raft/peer?id=nope", nil, nil, nil); resp.StatusCode != 404 {
		t.Fatalf("remove unknown peer: HTTP %d, want 404", resp.StatusCode)
	}
}

// TestCluster_DeadServerCleanup: with DeadServerCleanup set, the leader
// removes a server that has been failed that long.
func TestCluster_DeadServerCleanup(t *testing.T) {
	c := newTestCluster(t, 3, func(cfg *Config) { cfg.DeadServerCleanup = 500 * time.Millisecond })
	c.waitStable(3)
	c.followers()[0].kill()
	c.waitStable(2)
}

// TestCluster_NoLeaderFailsFast: with no quorum a write fails with 503 and
// a clear error within about ForwardWait, never hangs; stale reads still work.
func TestCluster_NoLeaderFailsFast(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	c.waitStable(3)
	id, _, err := c.servers[0].submitTo(oneJob, "")
	if err != nil {
		t.Fatal(err)
	}
	c.waitConverged([]string{id})
	for _, cs := range c.servers[:2] {
		cs.kill()
	}
	last := c.servers[2]
	waitForTB(t, "the survivor to lose its leader", func() bool { return last.srv.Leader() == "" })
	start := time.Now()
	_, code, err := last.submitOnce(oneJob, "")
	took := time.Since(start)
	if code != http.StatusServiceUnavailable {
		t.Fatalf("write without a leader: HTTP %d %v, want 503", code, err)
	}
	t.Logf("write without a leader: 503 after %s: %v", took.Round(time.Millisecond), err)
	if took > 4*time.Second {
		t.Fatalf("write without a leader took %s", took)
	}
	resp, err := last.try("GET", "/v1/pipelines", nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("consistent read without a leader: HTTP %d", resp.StatusCode)
	}
	resp = last.do("GET", "/v1/pipelines?stale", nil, nil, nil)
	if resp.StatusCode != 200 || resp.Header.Get(knownLeaderHeader) != "false" {
		t.Fatalf("stale read without a leader: HTTP %d %s=%q", resp.StatusCode, knownLeaderHeader, resp.Header.Get(knownLeaderHeader))
	}
}

// TestCluster_SnapshotSaveRestore: an operator snapshot taken through a
// follower and restored later brings every server back to that state.
func TestCluster_SnapshotSaveRestore(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	c.waitStable(3)
	f := c.followers()[0]
	var kept []string
	for i := 0; i < 5; i++ {
		id, _, err := f.submitTo(oneJob, fmt.Sprintf("k%d", i))
		if err != nil {
			t.Fatal(err)
		}
		kept = append(kept, id)
	}
	resp := f.do("GET", "/v1/operator/snapshot", nil, nil, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("snapshot save: HTTP %d", resp.StatusCode)
	}
	snap, _ := io.ReadAll(resp.Body)
	later, _, err := f.submitTo(oneJob, "later")
	if err != nil {
		t.Fatal(err)
	}
	c.waitConverged(append(kept, later))

	var out map[string]any
	resp = c.followers()[1].do("PUT", "/v1/operator/snapshot", snap, nil, &out)
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("snapshot restore: HTTP %d %s", resp.StatusCode, b)
	}
	c.waitConverged(kept)
	// The idempotency keys came back with the state; writes go on.
	if id, code, err := f.submitTo(oneJob, "k0"); err != nil || code != 200 || id != kept[0] {
		t.Fatalf("resubmit k0 after restore: %d %s %v", code, id, err)
	}
	// With their spec hashes: another spec under k0 is refused, through
	// the follower's forwarding too.
	if _, code, err := f.submitOnce(otherSpec, "k0"); code != 409 || !strings.Contains(fmt.Sprint(err), "pipeline "+kept[0]) {
		t.Fatalf("other spec under k0 after restore: HTTP %d %v; want 409 naming %s", code, err, kept[0])
	}
	if _, code, _ := f.submitTo(oneJob, "new"); code != 201 {
		t.Fatalf("submit after restore: HTTP %d", code)
	}
	// A damaged file is refused and changes nothing.
	resp = f.do("PUT", "/v1/operator/snapshot", snap[:len(snap)/2], nil, nil)
	if resp.StatusCode != 400 {
		t.Fatalf("restore of a cut-short snapshot: HTTP %d, want 400", resp.StatusCode)
	}
}

// TestCluster_WholeRestartKeepsPipelines: every server stops (one after a
// Raft snapshot, so restart replays snapshot + log) and starts again on its
// data dir: no bootstrap happens again, a leader is elected, every pipeline
// is there.
func TestCluster_WholeRestartKeepsPipelines(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	c.waitStable(3)
	var ids []string
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func(cs *clusterServer) {
			defer wg.Done()
			for j := 0; j < 5; j++ {
				id, _, err := cs.submitTo(oneJob, "")
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				ids = append(ids, id)
				mu.Unlock()
			}
		}(c.servers[i%3])
	}
	wg.Wait()
	c.waitConverged(ids)
	if err := c.servers[1].srv.raft.Snapshot().Error(); err != nil {
		t.Fatalf("raft snapshot: %v", err)
	}
	c.stopAll()
	for _, cs := range c.servers {
		cs.start()
		if cs.srv.bootstrapped.Load() != true {
			t.Fatalf("%s: a data dir with Raft state must never bootstrap again", cs.name)
		}
	}
	c.waitStable(3)
	c.waitConverged(ids)
	// The leader answers a leader-consistent read with every pipeline.
	got := c.waitStable(3).pipelineIDs(false)
	if len(got) != len(ids) {
		t.Fatalf("after restart: %d pipelines, want %d", len(got), len(ids))
	}
}

// TestCluster_NewLeaderRebuildsQueues: evaluations blocked for want of a
// node on the old leader are picked up by the new leader from state: a node
// registering after the failover gets the job placed.
func TestCluster_NewLeaderRebuildsQueues(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	l := c.waitStable(3)
	id, _, err := l.submitTo(oneJob, "")
	if err != nil {
		t.Fatal(err)
	}
	waitForTB(t, "the evaluation to block (no nodes)", func() bool {
		var evals []api.Evaluation
		l.do("GET", "/v1/evaluations?status=blocked", nil, nil, &evals)
		return len(evals) == 1
	})
	l.kill()
	nl := c.waitStableLeader()
	n := api.Node{ID: "n1", Name: "n1", Resources: api.Resources{CPU: 4000, MemoryMB: 8192},
		Drivers: map[string]*api.DriverInfo{"exec": {Detected: true, Healthy: true}}}
	b, _ := jsonMarshal(n)
	if resp := nl.do("POST", "/v1/client/nodes", b, nil, nil); resp.StatusCode != 200 {
		t.Fatalf("register node: HTTP %d", resp.StatusCode)
	}
	waitForTB(t, "the job to be placed by the new leader", func() bool {
		var p api.Pipeline
		nl.do("GET", "/v1/pipelines/"+id, nil, nil, &p)
		return len(p.Jobs) == 1 && p.Jobs[0].State == api.StateScheduled
	})
}

// waitStableLeader waits for a ready leader among the running servers.
func (c *testCluster) waitStableLeader() *clusterServer {
	c.t.Helper()
	var l *clusterServer
	waitForTB(c.t, "a leader", func() bool { l = c.leader(); return l != nil })
	return l
}

// TestCluster_AutoSnapshotCompactsLog: with a small snapshot threshold the
// servers take Raft snapshots by themselves and compact their logs; a
// server that joins afterwards catches up from a snapshot it is sent.
func TestCluster_AutoSnapshotCompactsLog(t *testing.T) {
	c := newTestCluster(t, 3, func(cfg *Config) {
		cfg.Raft.SnapshotThreshold = 16
		cfg.Raft.SnapshotInterval = 100 * time.Millisecond
		cfg.Raft.TrailingLogs = 4
	})
	l := c.waitStable(3)
	var ids []string
	for i := 0; i < 40; i++ {
		id, _, err := l.submitTo(oneJob, "")
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	for _, cs := range c.running() {
		waitForTB(t, cs.name+" to snapshot and compact its log", func() bool {
			st := cs.srv.raft.Stats()
			snap, _ := strconv.ParseUint(st["last_snapshot_index"], 10, 64)
			first, err := cs.srv.raftStore.FirstIndex()
			return snap > 0 && err == nil && first > 1
		})
	}
	late := &clusterServer{t: t, name: "s4", dir: t.TempDir(), expect: 3, opts: c.servers[0].opts,
		httpAddr: "127.0.0.1:0", raftAddr: "127.0.0.1:0", serfAddr: "127.0.0.1:0"}
	late.start()
	c.servers = append(c.servers, late)
	if _, err := late.srv.Join([]string{c.servers[0].serfAddr}); err != nil {
		t.Fatal(err)
	}
	c.waitStable(4)
	c.waitConverged(ids)
}
