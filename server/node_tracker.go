package server

import (
	"fmt"
	"maps"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/serf/serf"

	"github.com/ciplat/ciplat/gossip"
)

// tagGossipAddr is the serf tag with a server's capacity-gossip address,
// so servers find each other's gossip members through serf.
const tagGossipAddr = "gossip_addr"

// gossipJoinInterval is how often a server checks that it is in the same
// gossip pool as every server serf knows (1s in -dev).
const gossipJoinInterval = 5 * time.Second

// nodeTracker is what a server keeps about client nodes beside Raft: its
// member of the capacity gossip pool, and (on the leader) the last
// heartbeat of each node.
type nodeTracker struct {
	cfg  NodesConfig
	pool *gossip.Pool

	mu         sync.Mutex
	heartbeats map[string]time.Time // node ID → last heartbeat this server answered
}

// setupNodes starts this server's gossip member, tags the serf member
// with its address and starts the loop that joins the other servers'.
func (s *Server) setupNodes() error {
	cfg := s.cfg.Nodes
	cfg.setDefaults()
	pool, err := gossip.New(gossip.Config{
		Name:          gossip.NewName("server-" + s.cfg.NodeName),
		BindAddr:      cfg.GossipAddr,
		BindFallback:  cfg.GossipAddrFallback,
		AdvertiseAddr: cfg.GossipAdvertise,
		Role:          gossip.RoleServer,
		HTTPAddr:      s.cfg.HTTPAddr,
		SecretKey:     cfg.GossipKey,
		Local:         s.cfg.Dev,
		Tune:          cfg.GossipTune,
		Logger:        s.log,
		Now:           s.cfg.Now,
	})
	if err != nil {
		return fmt.Errorf("capacity gossip: %w", err)
	}
	s.nodes = &nodeTracker{cfg: cfg, pool: pool, heartbeats: map[string]time.Time{}}
	if s.serf != nil {
		tags := maps.Clone(s.serf.LocalMember().Tags)
		tags[tagGossipAddr] = pool.Addr()
		if err := s.serf.SetTags(tags); err != nil {
			s.log.Warn("cannot gossip this server's capacity-gossip address in serf", "err", err)
		}
	}
	s.wg.Add(1)
	go s.gossipJoinLoop()
	return nil
}

// shutdownNodes stops the gossip member (the others see it fail: a
// server's Shutdown is not a leave).
func (s *Server) shutdownNodes() {
	if s.nodes != nil && s.nodes.pool != nil {
		_ = s.nodes.pool.Shutdown()
	}
}

// GossipPool is the server's member of the capacity gossip pool. An agent
// that runs a client beside the server lets the client publish its node
// record through it.
func (s *Server) GossipPool() *gossip.Pool { return s.nodes.pool }

// GossipAddr is the address of the server's gossip member.
func (s *Server) GossipAddr() string { return s.nodes.pool.Addr() }

// gossipJoinLoop joins the gossip members of the servers serf knows and
// this pool does not, now and every gossipJoinInterval, so all servers
// share one pool even when no client joined them together.
func (s *Server) gossipJoinLoop() {
	defer s.wg.Done()
	every := gossipJoinInterval
	if s.cfg.Dev {
		every = time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		s.joinServerGossip()
		select {
		case <-s.shutdownCtx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *Server) joinServerGossip() {
	known := map[string]bool{}
	for _, m := range s.nodes.pool.Members() {
		if m.Alive() {
			known[m.Addr] = true
		}
	}
	var addrs []string
	for _, m := range s.serverMembers() {
		addr := m.Tags[tagGossipAddr]
		if m.Status == serf.StatusAlive && addr != "" && !known[addr] {
			addrs = append(addrs, addr)
		}
	}
	if len(addrs) == 0 {
		return
	}
	if n, err := s.nodes.pool.Join(addrs); err != nil {
		s.log.Debug("joining other servers' gossip members", "addrs", addrs, "err", err)
	} else {
		s.log.Debug("joined other servers' gossip members", "answered", n)
	}
}

// seedAddrs are the gossip addresses a client may join: every living
// server's, from the pool and from serf.
func (s *Server) seedAddrs() []string {
	set := map[string]bool{s.nodes.pool.Addr(): true}
	for _, a := range s.nodes.pool.ServerAddrs() {
		set[a] = true
	}
	for _, m := range s.serverMembers() {
		if a := m.Tags[tagGossipAddr]; a != "" && m.Status == serf.StatusAlive {
			set[a] = true
		}
	}
	return slices.Sorted(maps.Keys(set))
}

// gossipInfo is GET /v1/agent/gossip: where to join the pool, and the pool
// as this server sees it.
type gossipInfo struct {
	// Servers are the gossip addresses of the living servers: a client
	// given only -servers joins the pool through them.
	Servers []string `json:"servers"`
	// Encrypted tells whether the pool needs a key (-encrypt).
	Encrypted bool                 `json:"encrypted"`
	Members   []gossip.Member      `json:"members"`
	Nodes     []*gossip.NodeRecord `json:"nodes"`
}

func (s *Server) handleAgentGossip(w http.ResponseWriter, r *http.Request) (any, error) {
	return &gossipInfo{
		Servers:   s.seedAddrs(),
		Encrypted: len(s.nodes.cfg.GossipKey) > 0,
		Members:   s.nodes.pool.Members(),
		Nodes:     s.nodes.pool.Records(),
	}, nil
}

// heartbeat records that node id was heard from.
func (t *nodeTracker) heartbeat(id string, at time.Time) {
	t.mu.Lock()
	t.heartbeats[id] = at
	t.mu.Unlock()
}

// heartbeatsCopy is the last heartbeat of every node.
func (t *nodeTracker) heartbeatsCopy() map[string]time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	return maps.Clone(t.heartbeats)
}
