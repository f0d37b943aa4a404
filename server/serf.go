package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/raft"
	"github.com/hashicorp/serf/serf"
)

// Serf tags every server gossips about itself.
const (
	tagRole     = "role"
	tagID       = "id"
	tagRaftAddr = "raft_addr"
	tagHTTPAddr = "http_addr"
	tagExpect   = "expect"
	tagVersion  = "vsn"

	roleServer = "ciplat-server"
	// protocolVersion is the serf "vsn" tag: the wire protocol of this
	// server's HTTP forwarding and Raft entries.
	protocolVersion = "1"
)

// serverMember is a serf member that is a ciplat server, with its tags parsed.
type serverMember struct {
	Name     string
	Addr     string // serf address host:port
	Status   serf.MemberStatus
	ID       string
	RaftAddr string
	HTTPAddr string
	Expect   int
	Tags     map[string]string
	Protocol uint8
}

func parseServerMember(m serf.Member) (serverMember, bool) {
	if m.Tags[tagRole] != roleServer || m.Tags[tagID] == "" || m.Tags[tagRaftAddr] == "" {
		return serverMember{}, false
	}
	expect, _ := strconv.Atoi(m.Tags[tagExpect])
	return serverMember{
		Name:     m.Name,
		Addr:     net.JoinHostPort(m.Addr.String(), strconv.Itoa(int(m.Port))),
		Status:   m.Status,
		ID:       m.Tags[tagID],
		RaftAddr: m.Tags[tagRaftAddr],
		HTTPAddr: m.Tags[tagHTTPAddr],
		Expect:   expect,
		Tags:     m.Tags,
		Protocol: m.DelegateCur,
	}, true
}

// setupSerf starts this server's member of the servers' serf LAN pool.
// Member events drive bootstrapping and, on the leader, reconciliation of
// the Raft voters.
func (s *Server) setupSerf() error {
	host, portStr, err := net.SplitHostPort(s.cfg.SerfAddr)
	if err != nil {
		return fmt.Errorf("serf address %q: want host:port: %w", s.cfg.SerfAddr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return fmt.Errorf("serf address %q: invalid port", s.cfg.SerfAddr)
	}
	mc := memberlist.DefaultLANConfig()
	if s.cfg.Dev {
		mc = memberlist.DefaultLocalConfig()
	}
	mc.Name = s.cfg.NodeName
	mc.BindAddr = host
	mc.BindPort = port
	if s.cfg.SerfAdvertise != "" {
		ah, ap, err := net.SplitHostPort(s.cfg.SerfAdvertise)
		if err != nil {
			return fmt.Errorf("serf advertise address %q: want host:port: %w", s.cfg.SerfAdvertise, err)
		}
		mc.AdvertiseAddr = ah
		mc.AdvertisePort, _ = strconv.Atoi(ap)
	}
	logger := log.New(levelWriter{s.log.With("component", "serf")}, "", 0)
	mc.Logger = logger
	mc.SecretKey = s.cfg.Nodes.GossipKey // -encrypt covers the servers' serf pool too
	mc.LogOutput = nil

	sc := serf.DefaultConfig()
	sc.NodeName = s.cfg.NodeName
	sc.MemberlistConfig = mc
	sc.Logger = logger
	sc.LogOutput = nil
	sc.EnableNameConflictResolution = false
	sc.Tags = map[string]string{
		tagRole:     roleServer,
		tagID:       s.cfg.NodeName,
		tagRaftAddr: string(s.raftTransport.LocalAddr()),
		tagHTTPAddr: s.cfg.HTTPAddr,
		tagExpect:   strconv.Itoa(s.cfg.BootstrapExpect),
		tagVersion:  protocolVersion,
	}
	// The snapshot lets a restarted server rejoin the members it knew
	// without a -join.
	serfDir := filepath.Join(s.cfg.DataDir, "serf")
	if err := os.MkdirAll(serfDir, 0o700); err != nil {
		return fmt.Errorf("create serf dir: %w", err)
	}
	sc.SnapshotPath = filepath.Join(serfDir, "local.snapshot")
	book, err := openServerBook(filepath.Join(serfDir, "servers.json"))
	if err != nil {
		return fmt.Errorf("read the server book: %w", err)
	}
	s.serverBook = book
	sc.RejoinAfterLeave = true
	if s.cfg.Dev {
		sc.ReapInterval = time.Second
		sc.TombstoneTimeout = time.Minute
		sc.LeavePropagateDelay = 500 * time.Millisecond
	}
	s.serfEvents = make(chan serf.Event, 256)
	sc.EventCh = s.serfEvents
	sl, err := serf.Create(sc)
	if err != nil {
		return fmt.Errorf("start serf on %s: %w", s.cfg.SerfAddr, err)
	}
	s.serf = sl
	s.wg.Add(1)
	go s.serfEventLoop()
	return nil
}

// SerfAddr is the address of this server's serf member (for -join).
func (s *Server) SerfAddr() string {
	m := s.serf.LocalMember()
	return net.JoinHostPort(m.Addr.String(), strconv.Itoa(int(m.Port)))
}

// Join joins the serf pool through the given serf addresses (host:port;
// the port defaults to 4682) and returns how many answered.
func (s *Server) Join(addrs []string) (int, error) {
	full := make([]string, 0, len(addrs))
	for _, a := range addrs {
		if _, _, err := net.SplitHostPort(a); err != nil {
			a = net.JoinHostPort(a, "4682")
		}
		full = append(full, a)
	}
	n, err := s.serf.Join(full, true)
	if n > 0 {
		return n, nil
	}
	if err == nil {
		err = errors.New("no server answered")
	}
	return 0, fmt.Errorf("join %v: %w", addrs, err)
}

// serfEventLoop reacts to member events: try to bootstrap while the
// cluster is not formed, and tell the leader to reconcile.
func (s *Server) serfEventLoop() {
	defer s.wg.Done()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-s.shutdownCtx.Done():
			return
		case e := <-s.serfEvents:
			if _, ok := e.(serf.MemberEvent); !ok {
				continue
			}
			if err := s.serverBook.note(s.serverMembers()); err != nil {
				s.log.Warn("write the server book", "err", err)
			}
			s.maybeBootstrap()
			select {
			case s.reconcileCh <- struct{}{}:
			default:
			}
			select {
			case s.natsRoutesCh <- struct{}{}:
			default:
			}
		case now := <-tick.C:
			s.maybeBootstrap()
			s.rejoinMissingPeers(now)
		}
	}
}

// serverMembers returns the serf members that are ciplat servers.
func (s *Server) serverMembers() []serverMember {
	if s.serf == nil {
		return nil
	}
	var out []serverMember
	for _, m := range s.serf.Members() {
		if sm, ok := parseServerMember(m); ok {
			out = append(out, sm)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// memberByID finds the serf member of a Raft server ID.
func (s *Server) memberByID(id string) (serverMember, bool) {
	for _, m := range s.serverMembers() {
		if m.ID == id {
			return m, true
		}
	}
	return serverMember{}, false
}

// maybeBootstrap bootstraps Raft once -bootstrap-expect servers are alive in
// serf, all expecting the same count and none already part of a cluster.
// Every server computes the same configuration (sorted by ID) from the same
// tags, so those that bootstrap at once write identical first entries.
func (s *Server) maybeBootstrap() {
	expect := s.cfg.BootstrapExpect
	if expect < 2 || s.bootstrapped.Load() {
		return
	}
	var servers []serverMember
	for _, m := range s.serverMembers() {
		if m.Status != serf.StatusAlive {
			continue
		}
		if m.Expect != 0 && m.Expect != expect {
			s.log.Error("servers disagree on -bootstrap-expect; not bootstrapping", "member", m.Name, "member_expects", m.Expect, "expects", expect)
			return
		}
		servers = append(servers, m)
	}
	if len(servers) < expect {
		return
	}
	// A server already in a cluster means the cluster exists: its leader
	// will add this one.
	for _, m := range servers {
		if m.ID == s.cfg.NodeName {
			continue
		}
		peers, err := fetchPeers(s.shutdownCtx, &http.Client{Transport: s.forwarder.tr}, m.HTTPAddr)
		if err != nil {
			s.log.Debug("bootstrap: cannot ask a server for its peers yet", "member", m.Name, "err", err)
			return
		}
		if len(peers) > 0 {
			s.log.Info("bootstrap: an existing cluster was found; waiting for its leader to add this server", "member", m.Name)
			s.bootstrapped.Store(true)
			return
		}
	}
	cfg := raft.Configuration{}
	for _, m := range servers {
		cfg.Servers = append(cfg.Servers, raft.Server{ID: raft.ServerID(m.ID), Address: raft.ServerAddress(m.RaftAddr), Suffrage: raft.Voter})
	}
	sort.Slice(cfg.Servers, func(i, j int) bool { return cfg.Servers[i].ID < cfg.Servers[j].ID })
	s.bootstrapped.Store(true)
	if err := s.raft.BootstrapCluster(cfg).Error(); err != nil {
		if errors.Is(err, raft.ErrCantBootstrap) {
			return
		}
		s.log.Error("bootstrap raft", "err", err)
		return
	}
	s.log.Info("raft bootstrapped", "servers", len(cfg.Servers))
}

// fetchPeers asks a server's HTTP API for its Raft voters.
func fetchPeers(ctx context.Context, hc *http.Client, httpAddr string) ([]string, error) {
	if httpAddr == "" {
		return nil, errors.New("no HTTP address gossiped")
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+httpAddr+"/v1/status/peers", nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	var peers []string
	if err := json.NewDecoder(resp.Body).Decode(&peers); err != nil {
		return nil, err
	}
	return peers, nil
}

// levelWriter sends the standard-library log lines of serf and memberlist
// ("[WARN] memberlist: ...") to slog at their level; DEBUG lines are dropped.
type levelWriter struct{ l *slog.Logger }

func (w levelWriter) Write(p []byte) (int, error) {
	line := string(trimNL(p))
	level := slog.LevelInfo
	for prefix, l := range map[string]slog.Level{"[DEBUG]": slog.LevelDebug - 4, "[INFO]": slog.LevelDebug, "[WARN]": slog.LevelWarn, "[ERR]": slog.LevelError} {
		if i := strings.Index(line, prefix); i >= 0 {
			line = strings.TrimSpace(line[i+len(prefix):])
			level = l
			break
		}
	}
	w.l.Log(context.Background(), level, line)
	return len(p), nil
}
