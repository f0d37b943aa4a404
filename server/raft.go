package server

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
)

// setupRaft opens raft-boltdb and the file snapshot store in DataDir/raft,
// binds the TCP transport and starts Raft, bootstrapping a one-server
// cluster only when asked and when the data dir holds no Raft state.
func (s *Server) setupRaft() error {
	dir := filepath.Join(s.cfg.DataDir, "raft")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create raft dir: %w", err)
	}
	hlog := hclog.New(&hclog.LoggerOptions{
		Name:   "raft",
		Level:  hclog.Warn,
		Output: slogWriter{s.log},
	})
	store, err := raftboltdb.NewBoltStore(filepath.Join(dir, "raft.db"))
	if err != nil {
		return fmt.Errorf("open raft store: %w", err)
	}
	s.raftStore = store
	snaps, err := raft.NewFileSnapshotStoreWithLogger(dir, 2, hlog)
	if err != nil {
		return fmt.Errorf("open snapshot store: %w", err)
	}
	adv, err := raftAdvertise(s.cfg.RaftAddr, s.cfg.RaftAdvertise)
	if err != nil {
		return err
	}
	// MaxRPCsInFlight 1 turns pipelined replication off: with the default
	// (2) hashicorp/raft's netPipeline can park both of its goroutines after a
	// follower answers Success=false, so that follower never receives another
	// entry and the leader's Shutdown hangs (seen here in a 5-server test; the
	// same deadlock made grafana/pyroscope#5518 turn pipelining off). The
	// leader still batches entries into each AppendEntries.
	trans, err := raft.NewTCPTransportWithConfig(s.cfg.RaftAddr, adv, &raft.NetworkTransportConfig{
		Logger:          hlog,
		MaxPool:         3,
		Timeout:         10 * time.Second,
		MaxRPCsInFlight: max(s.cfg.Raft.MaxRPCsInFlight, 1),
	})
	if err != nil {
		return fmt.Errorf("raft transport on %s: %w", s.cfg.RaftAddr, err)
	}
	s.raftTransport = trans

	rc := s.raftConfig(hlog)
	has, err := raft.HasExistingState(store, store, snaps)
	if err != nil {
		return fmt.Errorf("read raft state: %w", err)
	}
	// A data dir that holds Raft state never bootstraps again; serf-driven
	// bootstrapping (-bootstrap-expect) is then off for good.
	s.bootstrapped.Store(has)
	if s.cfg.Bootstrap && !has {
		cfg := raft.Configuration{Servers: []raft.Server{{
			ID: rc.LocalID, Address: trans.LocalAddr(), Suffrage: raft.Voter,
		}}}
		if err := raft.BootstrapCluster(rc, store, store, snaps, trans, cfg); err != nil {
			return fmt.Errorf("bootstrap raft: %w", err)
		}
		s.bootstrapped.Store(true)
	}
	r, err := raft.NewRaft(rc, s.fsm, store, store, snaps, trans)
	if err != nil {
		return fmt.Errorf("start raft: %w", err)
	}
	s.raft = r
	return nil
}

// raftConfig builds Raft's configuration from the server's.
func (s *Server) raftConfig(hlog hclog.Logger) *raft.Config {
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(s.cfg.NodeName)
	rc.Logger = hlog
	s.leaderCh = make(chan bool, 16)
	rc.NotifyCh = s.leaderCh
	rc.SnapshotThreshold = 8192
	rc.SnapshotInterval = 2 * time.Minute
	rc.TrailingLogs = 10240
	// Let concurrent Applies share one disk write.
	rc.BatchApplyCh = true
	if s.cfg.Dev {
		rc.HeartbeatTimeout = 200 * time.Millisecond
		rc.ElectionTimeout = 200 * time.Millisecond
		rc.LeaderLeaseTimeout = 100 * time.Millisecond
		rc.CommitTimeout = 5 * time.Millisecond
	}
	t := s.cfg.Raft
	if t.HeartbeatTimeout > 0 {
		rc.HeartbeatTimeout = t.HeartbeatTimeout
	}
	if t.ElectionTimeout > 0 {
		rc.ElectionTimeout = t.ElectionTimeout
	}
	if t.LeaderLeaseTimeout > 0 {
		rc.LeaderLeaseTimeout = t.LeaderLeaseTimeout
	}
	rc.LeaderLeaseTimeout = min(rc.LeaderLeaseTimeout, rc.HeartbeatTimeout)
	if t.SnapshotThreshold > 0 {
		rc.SnapshotThreshold = t.SnapshotThreshold
	}
	if t.SnapshotInterval > 0 {
		rc.SnapshotInterval = t.SnapshotInterval
	}
	if t.TrailingLogs > 0 {
		rc.TrailingLogs = t.TrailingLogs
	}
	return rc
}

// raftAdvertise picks the address other servers dial: adv when set, else
// bind when it names a concrete IP and port, else nil (the listener's own
// address, which works for loopback binds with port 0).
func raftAdvertise(bind, adv string) (net.Addr, error) {
	if adv != "" {
		a, err := net.ResolveTCPAddr("tcp", adv)
		if err != nil {
			return nil, fmt.Errorf("raft advertise address %q: %w", adv, err)
		}
		if a.IP == nil || a.IP.IsUnspecified() || a.Port == 0 {
			return nil, fmt.Errorf("raft advertise address %q: want a concrete IP and port", adv)
		}
		return a, nil
	}
	addr, err := net.ResolveTCPAddr("tcp", bind)
	if err != nil {
		return nil, fmt.Errorf("raft address %q: %w", bind, err)
	}
	if addr.IP == nil || addr.IP.IsUnspecified() {
		return nil, fmt.Errorf("raft address %q binds every interface: set an advertise address (-advertise) other servers can dial", bind)
	}
	return advertiseFor(addr), nil
}

// advertiseFor returns nil (use the listener's address) unless addr names a
// concrete host and port.
func advertiseFor(addr *net.TCPAddr) net.Addr {
	if addr.Port == 0 || addr.IP == nil || addr.IP.IsUnspecified() {
		return nil
	}
	return addr
}

// slogWriter sends hclog's text lines to slog.
type slogWriter struct{ l *slog.Logger }

func (w slogWriter) Write(p []byte) (int, error) {
	w.l.Warn(string(trimNL(p)), "component", "raft")
	return len(p), nil
}

func trimNL(p []byte) []byte {
	for len(p) > 0 && (p[len(p)-1] == '\n' || p[len(p)-1] == '\r') {
		p = p[:len(p)-1]
	}
	return p
}

var _ io.Writer = slogWriter{}
