package server

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	"github.com/hashicorp/serf/serf"
)

// rejoinBackoff is how long a server waits between two attempts to join
// Raft peers that are missing from its serf pool.
const rejoinBackoff = 5 * time.Second

// serverBook remembers the serf address of every server this server has
// seen alive, by Raft server ID, in <data-dir>/serf/servers.json.
//
// serf's own snapshot forgets a member the moment it fails or leaves, so
// after servers are stopped one by one the last one's snapshot names no
// peer, and a whole-cluster restart leaves the servers each alone in serf
// while Raft (whose configuration is on disk) elects a leader: followers
// then cannot find the leader's HTTP address and every forwarded request
// fails. With the book, a server joins the Raft peers serf does not show
// (rejoinMissingPeers).
//
// Concurrency: safe for concurrent use; writes go to disk under the lock.
type serverBook struct {
	path string
	mu   sync.Mutex
	addr map[string]string // Raft server ID → serf host:port
}

func openServerBook(path string) (*serverBook, error) {
	b := &serverBook{path: path, addr: map[string]string{}}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return b, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(data, &b.addr); err != nil {
		// A torn write of an earlier run: start empty rather than refuse to
		// start; the pool fills the book again.
		b.addr = map[string]string{}
	}
	return b, nil
}

// note records the serf address of the alive servers in members and writes
// the book when something changed.
func (b *serverBook) note(members []serverMember) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	changed := false
	for _, m := range members {
		if m.Status != serf.StatusAlive || m.ID == "" || m.Addr == "" {
			continue
		}
		if b.addr[m.ID] != m.Addr {
			b.addr[m.ID] = m.Addr
			changed = true
		}
	}
	if !changed {
		return nil
	}
	data, err := json.Marshal(b.addr)
	if err != nil {
		return err
	}
	tmp := b.path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Clean(b.path))
}

// lookup returns the serf address last seen for the server id.
func (b *serverBook) lookup(id string) (string, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	a, ok := b.addr[id]
	return a, ok
}

// missingPeerAddrs returns the serf addresses of the Raft voters other than
// self that serf does not show alive, as far as the book knows them.
func missingPeerAddrs(self string, cfg raft.Configuration, members []serverMember, book *serverBook) []string {
	alive := map[string]bool{}
	for _, m := range members {
		if m.Status == serf.StatusAlive {
			alive[m.ID] = true
		}
	}
	var out []string
	for _, srv := range cfg.Servers {
		id := string(srv.ID)
		if id == self || alive[id] {
			continue
		}
		if a, ok := book.lookup(id); ok {
			out = append(out, a)
		}
	}
	slices.Sort(out)
	return out
}

// rejoinMissingPeers joins, in the background, the Raft peers that serf
// does not show alive, at most once per rejoinBackoff and one attempt at a
// time. Called from the serf event loop's tick.
func (s *Server) rejoinMissingPeers(now time.Time) {
	if s.serverBook == nil || s.rejoining.Load() || now.Before(s.nextRejoin) {
		return
	}
	cf := s.raft.GetConfiguration()
	if cf.Error() != nil {
		return
	}
	addrs := missingPeerAddrs(s.cfg.NodeName, cf.Configuration(), s.serverMembers(), s.serverBook)
	if len(addrs) == 0 {
		return
	}
	s.nextRejoin = now.Add(rejoinBackoff)
	s.rejoining.Store(true)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer s.rejoining.Store(false)
		n, err := s.serf.Join(addrs, true)
		s.log.Debug("rejoin Raft peers missing from serf", "addrs", addrs, "answered", n, "err", err)
	}()
}
