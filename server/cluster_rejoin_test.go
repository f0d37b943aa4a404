package server

import (
	"fmt"
	"testing"

	"github.com/hashicorp/serf/serf"
)

// serfSeesAlive reports whether cs's serf pool shows exactly the named
// servers alive.
func serfSeesAlive(cs *clusterServer, names ...string) bool {
	alive := map[string]bool{}
	for _, m := range cs.srv.serverMembers() {
		if m.Status == serf.StatusAlive {
			alive[m.Name] = true
		}
	}
	if len(alive) != len(names) {
		return false
	}
	for _, n := range names {
		if !alive[n] {
			return false
		}
	}
	return true
}

// TestCluster_RollingStopThenRestartRejoinsSerf: servers stopped one by
// one, each after the others saw the previous one fail, leave serf
// snapshots that name no live peer (the last one's names none). Restarted,
// Raft elects a leader from its configuration on disk; the servers must
// also find each other in serf again (serf_rejoin.go), or followers cannot
// forward to the leader and answer 503.
func TestCluster_RollingStopThenRestartRejoinsSerf(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	c.waitStable(3)
	id, code, err := c.servers[0].submitTo(oneJob, "")
	if err != nil || code != 201 {
		t.Fatalf("submit: %d %v", code, err)
	}
	c.waitConverged([]string{id})

	// s1 stops; s2 and s3 see it fail. s2 stops; s3 sees it fail. s3 stops.
	for i, cs := range c.servers {
		cs.kill()
		rest := c.servers[i+1:]
		var names []string
		for _, r := range rest {
			names = append(names, r.name)
		}
		for _, r := range rest {
			waitForTB(t, fmt.Sprintf("%s to see only %v alive in serf", r.name, names), func() bool {
				return serfSeesAlive(r, names...)
			})
		}
	}

	for _, cs := range c.servers {
		cs.start()
	}
	l := c.waitStable(3)
	for _, cs := range c.servers {
		waitForTB(t, cs.name+" to see all three servers alive in serf", func() bool {
			return serfSeesAlive(cs, "s1", "s2", "s3")
		})
	}
	// Leader-consistent reads through every follower are forwarded.
	for _, f := range c.followers() {
		if got := f.pipelineIDs(false); len(got) != 1 || got[0] != id {
			t.Fatalf("%s (follower of %s): pipelines %v, want [%s]", f.name, l.name, got, id)
		}
	}
}
