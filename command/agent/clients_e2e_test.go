package agent_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ciplat/ciplat/api"
)

// nodeProc is one `ciplat agent` process of a multi-process cluster: a
// server, or a client on its own data dir (its build host).
type nodeProc struct {
	t    testing.TB
	name string
	args []string
	cmd  *exec.Cmd
	addr string // HTTP API
	out  *lockedWriter
	buf  *bytes.Buffer
	done chan struct{}
}

func startNodeProc(t testing.TB, name string, args ...string) *nodeProc {
	t.Helper()
	p := &nodeProc{t: t, name: name, args: args}
	p.start()
	t.Cleanup(p.stop)
	return p
}

func (p *nodeProc) start() {
	p.t.Helper()
	cmd := exec.Command(binPath, p.args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		p.t.Fatal(err)
	}
	p.buf = &bytes.Buffer{}
	p.out = &lockedWriter{w: p.buf}
	cmd.Stderr = p.out
	if err := cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	p.cmd, p.done = cmd, make(chan struct{})
	addrCh := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "HTTP API: "); ok {
				addrCh <- v
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	done := p.done
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case p.addr = <-addrCh:
	case <-p.done:
		p.t.Fatalf("%s exited before serving: %s", p.name, p.logs())
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		p.t.Fatalf("%s did not print its address: %s", p.name, p.logs())
	}
}

func (p *nodeProc) logs() string {
	p.out.mu.Lock()
	defer p.out.mu.Unlock()
	return p.buf.String()
}

// kill is SIGKILL: no graceful anything.
func (p *nodeProc) kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

// stop is SIGINT and a wait; it does nothing to a process already gone.
func (p *nodeProc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// clientCluster is 1 server and n clients, each a real process, the clients
// given only the server's HTTP address (they learn the gossip pool's from
// it). Default settings: LAN gossip timings, 15s heartbeat TTL.
type clientCluster struct {
	t       testing.TB
	server  *nodeProc
	clients []*nodeProc
	api     *api.Client
}

func startClientCluster(t testing.TB, n int, serverArgs ...string) *clientCluster {
	t.Helper()
	c := &clientCluster{t: t}
	c.server = startNodeProc(t, "server", append([]string{"agent", "-server", "-bootstrap-expect", "1", "-node", "s1",
		"-data-dir", t.TempDir(), "-http-addr", "127.0.0.1:0", "-raft-addr", "127.0.0.1:0", "-serf-addr", "127.0.0.1:0",
		"-gossip-addr", "127.0.0.1:0", "-log-level", "warn"}, serverArgs...)...)
	var err error
	if c.api, err = api.NewClient(&api.Config{Address: c.server.addr}); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= n; i++ {
		name := fmt.Sprintf("build-%d", i)
		c.clients = append(c.clients, startNodeProc(t, name, "agent", "-client", "-servers", c.server.addr,
			"-data-dir", t.TempDir(), "-node", name, "-gossip-addr", "127.0.0.1:0", "-http-addr", "127.0.0.1:0",
			"-driver", "exec", "-label", "slot="+name, "-reserve-cpu", "100", "-log-level", "warn"))
	}
	c.waitNodes("every client ready", func(nodes []*api.Node) bool {
		ready := 0
		for _, nd := range nodes {
			if nd.Status == api.NodeStatusReady {
				ready++
			}
		}
		return ready == n
	})
	return c
}

// waitNodes follows GET /v1/nodes with blocking queries until cond holds.
func (c *clientCluster) waitNodes(what string, cond func([]*api.Node) bool) []*api.Node {
	c.t.Helper()
	var idx uint64
	deadline := time.Now().Add(90 * time.Second)
	for {
		nodes, meta, err := c.api.Nodes(context.Background(), &api.QueryOptions{WaitIndex: idx, WaitTime: 2 * time.Second})
		if err == nil {
			if cond(nodes) {
				return nodes
			}
			idx = meta.LastIndex
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("timed out waiting for %s; nodes: %s\nserver log:\n%s", what, nodeSummary(nodes), c.server.logs())
		}
	}
}

func nodeSummary(nodes []*api.Node) string {
	var out []string
	for _, n := range nodes {
		out = append(out, fmt.Sprintf("%s/%s/%s", n.Name, n.ID[:8], n.Status))
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

// nodeNamed returns the node of a client by name.
func (c *clientCluster) nodeNamed(name string) *api.Node {
	c.t.Helper()
	nodes, _, err := c.api.Nodes(context.Background(), nil)
	if err != nil {
		c.t.Fatal(err)
	}
	for _, n := range nodes {
		if n.Name == name {
			return n
		}
	}
	c.t.Fatalf("no node named %s: %s", name, nodeSummary(nodes))
	return nil
}

func (c *clientCluster) proc(name string) *nodeProc {
	for _, p := range c.clients {
		if p.name == name {
			return p
		}
	}
	c.t.Fatalf("no client %s", name)
	return nil
}

// waitJob follows a job until cond holds (a poll: job reads are cheap).
func (c *clientCluster) waitJob(id, what string, within time.Duration, cond func(*api.Job) bool) *api.Job {
	c.t.Helper()
	deadline := time.Now().Add(within)
	for {
		j, _, err := c.api.Job(context.Background(), id, nil)
		if err == nil && cond(j) {
			return j
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("timed out waiting for %s: %+v %v\nserver log:\n%s", what, j, err, c.server.logs())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// killSpec is one long job: its first attempt would run 60s, later ones
// 2s; each attempt that ends writes its number to marker.
func killSpec(name, marker string) []byte {
	return fmt.Appendf(nil, `name: %s
jobs:
  long:
    reschedule: { attempts: 2, delay: 100ms, max_delay: 100ms }
    steps:
      - name: work
        run: |
          echo "attempt $CIPLAT_ATTEMPT started"
          if [ "$CIPLAT_ATTEMPT" = 1 ]; then sleep 60; else sleep 2; fi
          echo "done $CIPLAT_ATTEMPT" >> %s
`, name, marker)
}

// killAndMeasure runs one long job, SIGKILLs the client running it and
// returns the time from the kill to the job RUNNING on another client,
// with the job, once it SUCCEEDED, and the killed client's name.
func (c *clientCluster) killAndMeasure(name, marker string) (time.Duration, *api.Job, string) {
	c.t.Helper()
	p, err := c.api.SubmitPipeline(context.Background(), killSpec(name, marker), nil)
	if err != nil {
		c.t.Fatal(err)
	}
	jobID := p.Jobs[0].ID
	j := c.waitJob(jobID, "the first attempt RUNNING", 60*time.Second, func(j *api.Job) bool {
		return j.State == api.StateRunning && j.Attempt == 1
	})
	var victim string
	for _, n := range c.mustNodes() {
		if n.ID == j.NodeID {
			victim = n.Name
		}
	}
	killed := time.Now()
	c.proc(victim).kill()
	moved := c.waitJob(jobID, "the job RUNNING elsewhere", 90*time.Second, func(j *api.Job) bool {
		return j.State == api.StateRunning && j.Attempt == 2
	})
	took := time.Since(killed)
	if moved.NodeID == j.NodeID {
		c.t.Fatalf("the job was rescheduled onto the dead node %s", victim)
	}
	done := c.waitJob(jobID, "the job SUCCEEDED", 60*time.Second, func(j *api.Job) bool { return api.TerminalState(j.State) })
	return took, done, victim
}

func (c *clientCluster) mustNodes() []*api.Node {
	nodes, _, err := c.api.Nodes(context.Background(), nil)
	if err != nil {
		c.t.Fatal(err)
	}
	return nodes
}

// TestE2E_ClientKilledMidJob: 1 server + 3 clients, real binaries. A client
// is SIGKILLed while it runs a long job: the job is TERMINATED,
// rescheduled on another client and SUCCEEDS. The killed client, restarted
// on its data dir, comes back ready and runs nothing twice. Then a drain:
// the drained node finishes what it runs and takes nothing new.
func TestE2E_ClientKilledMidJob(t *testing.T) {
	c := startClientCluster(t, 3)

	// The clients learned the pool from the server and joined it.
	var info *api.GossipInfo
	deadline := time.Now().Add(30 * time.Second)
	for {
		var err error
		info, err = c.api.Gossip(context.Background())
		alive := 0
		for _, m := range info.Members {
			if err == nil && m.Status == "alive" {
				alive++
			}
		}
		if alive == 4 && len(info.Servers) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("gossip pool: %+v (%v); want 4 alive members\nclient log:\n%s", info, err, c.clients[0].logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
	n1 := c.nodeNamed("build-1")
	if n1.Reserved.CPU != 100 || n1.Attributes["label.slot"] != "build-1" || !n1.Drivers["exec"].Healthy {
		t.Fatalf("node build-1: %+v", n1)
	}

	marker := filepath.Join(t.TempDir(), "attempts")
	took, job, victim := c.killAndMeasure("killed", marker)
	t.Logf("SIGKILL of %s → job RUNNING on another client: %v", victim, took)
	if job.State != api.StateSucceeded || job.Attempt != 2 || len(job.History) != 2 {
		t.Fatalf("job: %s attempt %d history %+v; want SUCCEEDED on attempt 2", job.State, job.Attempt, job.History)
	}
	h := job.History[0]
	if h.State != api.StateTerminated || !strings.Contains(h.Reason, "down") {
		t.Fatalf("first attempt: %+v; want TERMINATED (node down)", h)
	}
	dead := c.nodeNamed(victim)
	if dead.Status != api.NodeStatusDown {
		t.Fatalf("killed node is %s", dead.Status)
	}
	out, _, code := cli(t, c.server.addr, "node", "status")
	if code != 0 || !strings.Contains(out, victim) || !strings.Contains(out, "down") {
		t.Errorf("node status (%d):\n%s", code, out)
	}

	// The killed client comes back on its data dir: ready again, same node.
	p := c.proc(victim)
	p.start()
	c.waitNodes(victim+" ready again", func(nodes []*api.Node) bool {
		for _, n := range nodes {
			if n.ID == dead.ID && n.Status == api.NodeStatusReady {
				return true
			}
		}
		return false
	})
	// Give it time to run what it would wrongly run: then nothing of the
	// first attempt ran to its end, before or after the restart.
	time.Sleep(3 * time.Second)
	b, _ := os.ReadFile(marker)
	if got := strings.TrimSpace(string(b)); got != "done 2" {
		t.Fatalf("attempts that ran to their end: %q, want only attempt 2", got)
	}
	back := c.nodeNamed(victim)
	if back.Allocated != nil && back.Allocated.CPU != 0 {
		t.Fatalf("the restarted node holds %+v", back.Allocated)
	}
	if j, _, _ := c.api.Job(context.Background(), job.ID, nil); j.Attempt != 2 || j.State != api.StateSucceeded {
		t.Fatalf("after the restart the job is %s (attempt %d)", j.State, j.Attempt)
	}

	// Drain: one node finishes its job and takes nothing new.
	drainSpec := fmt.Appendf(nil, "name: drained\njobs:\n  slow:\n    constraints: [ { attr: label.slot, value: %s } ]\n    steps: [ { name: s, run: 'sleep 3' } ]\n", victim)
	dp, err := c.api.SubmitPipeline(context.Background(), drainSpec, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.waitJob(dp.Jobs[0].ID, "the slow job RUNNING", 60*time.Second, func(j *api.Job) bool { return j.State == api.StateRunning })
	out, errOut, code := cli(t, c.server.addr, "node", "drain", "-enable", back.ID[:8])
	if code != 0 || !strings.Contains(out, "draining") {
		t.Fatalf("node drain (%d): %s %s", code, out, errOut)
	}
	var others []string
	for i := range 3 {
		op, err := c.api.SubmitPipeline(context.Background(), fmt.Appendf(nil, "name: after-%d\njobs:\n  quick:\n    steps: [ 'true' ]\n", i), nil)
		if err != nil {
			t.Fatal(err)
		}
		others = append(others, op.Jobs[0].ID)
	}
	for _, id := range others {
		j := c.waitJob(id, "a job submitted during the drain", 60*time.Second, func(j *api.Job) bool { return api.TerminalState(j.State) })
		if j.State != api.StateSucceeded || j.NodeID == back.ID {
			t.Fatalf("job submitted during the drain: %s on %s (drained node %s)", j.State, j.NodeID, back.ID)
		}
	}
	if j := c.waitJob(dp.Jobs[0].ID, "the drained node's job to finish", 60*time.Second, func(j *api.Job) bool {
		return api.TerminalState(j.State)
	}); j.State != api.StateSucceeded || j.Attempt != 1 {
		t.Fatalf("the drained node's job: %s attempt %d, want SUCCEEDED where it ran", j.State, j.Attempt)
	}
	c.waitNodes("the drain to complete", func(nodes []*api.Node) bool {
		for _, n := range nodes {
			if n.ID == back.ID {
				return !n.Drain && !n.Eligible
			}
		}
		return false
	})
	out, _, _ = cli(t, c.server.addr, "node", "status", "-verbose")
	t.Logf("node status -verbose:\n%s", out)
}

// BenchmarkNodeDeathToRunningElsewhere measures, with default settings
// (LAN gossip timings, 15s heartbeat TTL) and real processes, the time from
// SIGKILL of the client running a job to that job RUNNING on another
// client; it reports the median over CIPLAT_BENCH_RUNS runs (default 10).
// Each run restarts the killed client, so three clients always stand.
func BenchmarkNodeDeathToRunningElsewhere(b *testing.B) {
	runs := 10
	if v := getenvInt("CIPLAT_BENCH_RUNS"); v > 0 {
		runs = v
	}
	c := startClientCluster(b, 3)
	var took []time.Duration
	b.ResetTimer()
	for i := range runs {
		d, job, victim := c.killAndMeasure(fmt.Sprintf("bench-%d", i), filepath.Join(b.TempDir(), "marker"))
		if job.State != api.StateSucceeded {
			b.Fatalf("run %d: job %s", i, job.State)
		}
		took = append(took, d)
		p := c.proc(victim)
		p.start()
		c.waitNodes("every client ready", func(nodes []*api.Node) bool {
			ready := 0
			for _, n := range nodes {
				if n.Status == api.NodeStatusReady {
					ready++
				}
			}
			return ready == 3
		})
	}
	b.StopTimer()
	sort.Slice(took, func(i, j int) bool { return took[i] < took[j] })
	b.ReportMetric(float64(took[len(took)/2].Milliseconds()), "ms-median")
	b.ReportMetric(float64(took[0].Milliseconds()), "ms-min")
	b.ReportMetric(float64(took[len(took)-1].Milliseconds()), "ms-max")
	b.Logf("kill → RUNNING elsewhere over %d runs: %v", runs, took)
}
