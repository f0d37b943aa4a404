package agent_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ciplat/ciplat/api"
)

// TestCluster_LeaderKilledBuildsSucceed is issue 12's item 11 with the real
// binary: three `-server -client` agents, 40 one-step pipelines submitted
// around a SIGKILL of the leader agent (half before, half after), the first
// half preferring the leader's node so some of them run there when it
// dies. A lost host must not fail a build: every pipeline ends SUCCEEDED,
// the jobs the dead node ran are rescheduled (history kind reschedule,
// cause node-lost) on the surviving nodes, and none used up a retry (the
// jobs have retry 0).
func TestCluster_LeaderKilledBuildsSucceed(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process cluster test")
	}
	extra := map[int][]string{}
	for i := range 3 {
		extra[i] = []string{"-label", fmt.Sprintf("agent=s%d", i+1)}
	}
	procs := startServerCluster(t, 3, extra, "-client", "-driver", "exec",
		"-nats-addr", "127.0.0.1:0", "-gossip-addr", "127.0.0.1:0", "-heartbeat-ttl", "5s")
	leader := waitClusterLeader(t, procs, procs, nil, 60*time.Second)
	var survivors []*serverProc
	for _, p := range procs {
		if p != leader {
			survivors = append(survivors, p)
		}
	}
	waitNodesReady(t, leader.api(), 3, 60*time.Second)

	spec := func(name, prefer string) []byte {
		s := "name: " + name + "\njobs:\n  build:\n    resources: { cpu: 10, memory: 1 }\n    retry: 0\n" +
			"    reschedule: { attempts: 3, delay: 1s, max_delay: 2s }\n"
		if prefer != "" {
			s += "    affinities: [ { attr: label.agent, op: '=', value: " + prefer + ", weight: 100 } ]\n"
		}
		return []byte(s + "    steps: [ 'sleep 2' ]\n")
	}
	var (
		mu    sync.Mutex
		acked = map[string]string{} // name → pipeline ID
	)
	// submit retries the same idempotency key on the next server until a
	// 2xx, as a careful client does across a failover.
	submit := func(servers []*serverProc, name, prefer string, start int) {
		deadline := time.Now().Add(60 * time.Second)
		for i := start; ; i++ {
			p := servers[i%len(servers)]
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			pl, err := p.api().SubmitPipeline(ctx, spec(name, prefer), &api.SubmitOptions{IdempotencyKey: name})
			cancel()
			if err == nil {
				mu.Lock()
				acked[name] = pl.ID
				mu.Unlock()
				return
			}
			if time.Now().After(deadline) {
				t.Errorf("submit %s: %v", name, err)
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	for i := range 20 {
		submit(procs, fmt.Sprintf("before-%02d", i), leader.name, i)
	}
	// Kill the leader once some of those run on its node.
	pollUntil(t, 30*time.Second, "a job running on the leader's node", func() bool {
		return runningOn(leader.api(), leader.name)
	})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range 20 {
			submit(survivors, fmt.Sprintf("after-%02d", i), "", i)
		}
	}()
	leader.kill()
	t.Logf("leader %s SIGKILLed", leader.name)
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}

	c := survivors[0].api()
	rescheduled := 0
	pollUntil(t, 3*time.Minute, "every pipeline to end", func() bool {
		mu.Lock()
		defer mu.Unlock()
		for name, id := range acked {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			p, _, err := c.Pipeline(ctx, id, nil)
			cancel()
			if err != nil {
				return false
			}
			switch p.State {
			case api.StateSucceeded:
			case api.StateFailed, api.StateCancelled, api.StateTerminated:
				t.Fatalf("pipeline %s ended %s: %s", name, p.State, jobsOf(c, p))
			default:
				return false
			}
		}
		return true
	})
	for _, id := range acked {
		p, _, err := c.Pipeline(context.Background(), id, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, jid := range p.JobIDs {
			j, _, err := c.Job(context.Background(), jid, nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, h := range j.History {
				if h.Kind == "retry" {
					t.Errorf("job %s used a retry: %+v", j.Name, h)
				}
				if h.Kind == "reschedule" && h.Cause == "node-lost" {
					rescheduled++
					if j.NodeID == h.NodeID {
						t.Errorf("job %s rescheduled back onto the lost node %s", j.Name, h.NodeID)
					}
				}
			}
		}
	}
	if rescheduled == 0 {
		t.Fatalf("no job was rescheduled off the lost node: the scenario did not exercise a lost host")
	}
	t.Logf("%d pipelines SUCCEEDED; %d attempts rescheduled off the killed leader's node", len(acked), rescheduled)
}

// waitNodesReady polls until n nodes are ready.
func waitNodesReady(t *testing.T, c *api.Client, n int, within time.Duration) {
	t.Helper()
	pollUntil(t, within, fmt.Sprintf("%d nodes ready", n), func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		nodes, _, err := c.Nodes(ctx, nil)
		if err != nil {
			return false
		}
		ready := 0
		for _, nd := range nodes {
			if nd.Status == "ready" {
				ready++
			}
		}
		return ready >= n
	})
}

// runningOn reports whether some job runs on the node named name.
func runningOn(c *api.Client, name string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	nodes, _, err := c.Nodes(ctx, nil)
	if err != nil {
		return false
	}
	for _, nd := range nodes {
		if nd.Name == name && nd.Allocated != nil && nd.Allocated.CPU > 0 {
			return true
		}
	}
	return false
}

// jobsOf describes a pipeline's jobs for a failure message.
func jobsOf(c *api.Client, p *api.Pipeline) string {
	out := ""
	for _, jid := range p.JobIDs {
		j, _, err := c.Job(context.Background(), jid, nil)
		if err != nil {
			out += fmt.Sprintf("[%s: %v] ", jid, err)
			continue
		}
		out += fmt.Sprintf("[%s %s %q history %+v] ", j.Name, j.State, j.Reason, j.History)
	}
	return out
}

// pollUntil polls cond every 200ms until it holds, failing the test after
// within.
func pollUntil(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
