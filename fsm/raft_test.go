package fsm

import (
	"io"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"

	"github.com/ciplat/ciplat/fsm/structs"
)

// raftServer is one real Raft server: bolt log and stable store, file
// snapshots and a TCP transport on a random local port, over an FSM.
type raftServer struct {
	r     *raft.Raft
	fsm   *FSM
	store *raftboltdb.BoltStore
	trans *raft.NetworkTransport
	snaps *raft.FileSnapshotStore
}

const serverID = raft.ServerID("server-1")

func openRaft(t *testing.T, dir string, bootstrap bool) *raftServer {
	t.Helper()
	f, err := New(nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	store, err := raftboltdb.NewBoltStore(filepath.Join(dir, "raft.db"))
	if err != nil {
		t.Fatalf("bolt store: %v", err)
	}
	snaps, err := raft.NewFileSnapshotStore(dir, 2, io.Discard)
	if err != nil {
		t.Fatalf("snapshot store: %v", err)
	}
	trans, err := raft.NewTCPTransport("127.0.0.1:0", nil, 3, 5*time.Second, io.Discard)
	if err != nil {
		t.Fatalf("TCP transport: %v", err)
	}
	conf := raft.DefaultConfig()
	conf.LocalID = serverID
	conf.LogOutput = io.Discard
	conf.HeartbeatTimeout = 100 * time.Millisecond
	conf.ElectionTimeout = 100 * time.Millisecond
	conf.LeaderLeaseTimeout = 100 * time.Millisecond
	conf.CommitTimeout = 5 * time.Millisecond
	if bootstrap {
		cfg := raft.Configuration{Servers: []raft.Server{{ID: serverID, Address: trans.LocalAddr()}}}
		if err := raft.BootstrapCluster(conf, store, store, snaps, trans, cfg); err != nil {
			t.Fatalf("BootstrapCluster: %v", err)
		}
	}
	r, err := raft.NewRaft(conf, f, store, store, snaps, trans)
	if err != nil {
		t.Fatalf("NewRaft: %v", err)
	}
	s := &raftServer{r: r, fsm: f, store: store, trans: trans, snaps: snaps}
	t.Cleanup(s.close)
	return s
}

// close shuts the server down; calling it twice is harmless.
func (s *raftServer) close() {
	if s.r == nil {
		return
	}
	_ = s.r.Shutdown().Error()
	_ = s.trans.Close()
	_ = s.store.Close()
	s.r = nil
}

// waitLeader waits until the server leads, woken by LeaderCh or a short
// poll of LeaderWithID, failing after a deadline.
func (s *raftServer) waitLeader(t *testing.T) {
	t.Helper()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if _, id := s.r.LeaderWithID(); id == serverID && s.r.State() == raft.Leader {
			return
		}
		select {
		case <-s.r.LeaderCh():
		case <-tick.C:
		case <-deadline.C:
			t.Fatalf("no leader after 10s (state %s)", s.r.State())
		}
	}
}

func (s *raftServer) register(t *testing.T, id string) {
	t.Helper()
	p, jobs := newPipeline(id, jobSpec("build"), jobSpec("test", needs("build")))
	data, err := structs.Encode(structs.PipelineRegisterRequestType, &structs.PipelineRegisterRequest{
		WriteRequest: structs.WriteRequest{Timestamp: t0}, Pipeline: p, Jobs: jobs})
	if err != nil {
		t.Fatalf("Encode: %v", err)
	}
	fut := s.r.Apply(data, 5*time.Second)
	if err := fut.Error(); err != nil {
		t.Fatalf("raft Apply: %v", err)
	}
	resp, ok := fut.Response().(*structs.PipelineRegisterResponse)
	if !ok || resp.PipelineID != id || resp.Existing || resp.Index != fut.Index() {
		t.Fatalf("register response = %#v, want a new %s at index %d", fut.Response(), id, fut.Index())
	}
}

func (s *raftServer) barrier(t *testing.T) {
	t.Helper()
	if err := s.r.Barrier(5 * time.Second).Error(); err != nil {
		t.Fatalf("Barrier: %v", err)
	}
}

func hasPipeline(t *testing.T, f *FSM, id string) bool {
	t.Helper()
	p, err := f.State().PipelineByID(nil, id)
	if err != nil {
		t.Fatalf("PipelineByID: %v", err)
	}
	return p != nil
}

// TestFSM_RealRaft runs the FSM under a real single-server Raft, restarts it
// on the same data directory, and checks the state comes back by log replay
// and then from a snapshot.
func TestFSM_RealRaft(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a real Raft server")
	}
	dir := t.TempDir()

	s := openRaft(t, dir, true)
	s.waitLeader(t)
	s.register(t, "p1")
	if !hasPipeline(t, s.fsm, "p1") {
		t.Fatalf("p1 not in the FSM after a committed apply")
	}
	if j, _ := s.fsm.State().JobByID(nil, "p1-build"); j == nil || j.EvalID == "" {
		t.Fatalf("p1-build = %+v, want a job with an evaluation", j)
	}
	s.close()

	// Restart: no snapshot yet, so the log is replayed.
	s = openRaft(t, dir, false)
	if list, _ := s.snaps.List(); len(list) != 0 {
		t.Fatalf("found %d snapshots before taking one", len(list))
	}
	s.waitLeader(t)
	s.barrier(t)
	if !hasPipeline(t, s.fsm, "p1") {
		t.Fatalf("p1 not restored by log replay")
	}
	if err := s.r.Snapshot().Error(); err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	s.register(t, "p2") // after the snapshot: only in the log
	want := persisted(t, s.fsm)
	s.close()

	// Restart: NewRaft restores the snapshot before it returns, then the
	// log after it is replayed.
	s = openRaft(t, dir, false)
	if list, _ := s.snaps.List(); len(list) != 1 {
		t.Fatalf("found %d snapshots, want 1", len(list))
	}
	if !hasPipeline(t, s.fsm, "p1") {
		t.Fatalf("p1 not restored from the snapshot")
	}
	s.waitLeader(t)
	s.barrier(t)
	if !hasPipeline(t, s.fsm, "p2") {
		t.Fatalf("p2 not restored by replaying the log after the snapshot")
	}
	if got := persisted(t, s.fsm); string(got) != string(want) {
		t.Fatalf("state after restart differs:\n%s\nvs\n%s", got, want)
	}
}
