package server

import (
	"testing"

	"github.com/ciplat/ciplat/server/httpapi"
)

// TestCluster_SchedulerConfigSurvivesFailover: the scheduler configuration
// stored through Raft is the one the next leader uses: its worker pool and
// its answers, after the leader that stored it died.
func TestCluster_SchedulerConfigSurvivesFailover(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	l := c.waitStable(3)
	var v httpapi.SchedulerConfigView
	// Through a follower: the write is forwarded to the leader.
	f := c.followers()[0]
	if resp := f.do("PUT", "/v1/operator/scheduler", []byte(`{"algorithm": "spread", "preemption": true, "workers": 5}`), nil, &v); resp.StatusCode != 200 {
		t.Fatalf("PUT via a follower: HTTP %d", resp.StatusCode)
	}
	waitForTB(t, "5 workers on the leader", func() bool { return l.srv.metrics.workers.Load() == 5 })

	l.kill()
	var nl *clusterServer
	waitForTB(t, "a new leader", func() bool { nl = c.leader(); return nl != nil })
	if resp := nl.do("GET", "/v1/operator/scheduler", nil, nil, &v); resp.StatusCode != 200 ||
		v.Algorithm != "spread" || !v.Preemption || v.Workers != 5 || v.Source != "raft" {
		t.Fatalf("after failover: HTTP %d %+v; want the stored spread, preemption, 5 workers", resp.StatusCode, v)
	}
	waitForTB(t, "5 workers on the new leader", func() bool { return nl.srv.metrics.workers.Load() == 5 })
	if _, cfg := nl.srv.sched.forState(nl.srv.State()); cfg.Algorithm != "spread" || !cfg.Preemption {
		t.Fatalf("the new leader's workers would use %+v", cfg)
	}
}
