package agent_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ciplat/ciplat/api"
)

// serverProc is one `ciplat agent -server` process of a multi-process
// cluster, with fixed ports so a restart on its data dir keeps its Raft
// and serf addresses.
type serverProc struct {
	t        testing.TB
	name     string
	dataDir  string
	httpAddr string
	raftAddr string
	serfAddr string
	args     []string

	mu   sync.Mutex
	cmd  *exec.Cmd
	out  *bytes.Buffer
	done chan struct{}
}

// freePorts returns n loopback ports free for TCP and UDP alike (serf
// uses both on one port).
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	var ports []int
	var hold []io.Closer
	defer func() {
		for _, c := range hold {
			c.Close()
		}
	}()
	for len(ports) < n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		hold = append(hold, ln)
		port := ln.Addr().(*net.TCPAddr).Port
		pc, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			continue
		}
		hold = append(hold, pc)
		ports = append(ports, port)
	}
	return ports
}

// startServerCluster starts n server processes with -bootstrap-expect n,
// each -retry-join'ing the others; extra[i] are more flags for server i.
func startServerCluster(t testing.TB, n int, extra map[int][]string, common ...string) []*serverProc {
	t.Helper()
	ports := freePorts(t, 3*n)
	procs := make([]*serverProc, n)
	for i := range procs {
		procs[i] = &serverProc{t: t, name: fmt.Sprintf("s%d", i+1), dataDir: t.TempDir(),
			httpAddr: fmt.Sprintf("127.0.0.1:%d", ports[3*i]),
			raftAddr: fmt.Sprintf("127.0.0.1:%d", ports[3*i+1]),
			serfAddr: fmt.Sprintf("127.0.0.1:%d", ports[3*i+2])}
	}
	for i, p := range procs {
		p.args = []string{"agent", "-server", "-bootstrap-expect", strconv.Itoa(n), "-node", p.name,
			"-data-dir", p.dataDir, "-http-addr", p.httpAddr, "-raft-addr", p.raftAddr, "-serf-addr", p.serfAddr,
			"-retry-interval", "200ms", "-log-level", "warn", "-nats-cluster-addr", "127.0.0.1:0"}
		for _, o := range procs {
			if o != p {
				p.args = append(p.args, "-retry-join", o.serfAddr)
			}
		}
		p.args = append(p.args, common...)
		p.args = append(p.args, extra[i]...)
	}
	for _, p := range procs {
		p.start()
		t.Cleanup(p.stop)
	}
	return procs
}

func (p *serverProc) start() {
	p.t.Helper()
	cmd := exec.Command(binPath, p.args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		p.t.Fatal(err)
	}
	out := &bytes.Buffer{}
	cmd.Stderr = &lockedWriter{w: out}
	if err := cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	done := make(chan struct{})
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		once := sync.Once{}
		for sc.Scan() {
			if strings.Contains(sc.Text(), "HTTP API: ") {
				once.Do(func() { close(ready) })
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	go func() { _ = cmd.Wait(); close(done) }()
	p.mu.Lock()
	p.cmd, p.out, p.done = cmd, out, done
	p.mu.Unlock()
	select {
	case <-ready:
	case <-done:
		p.t.Fatalf("%s exited at start: %s", p.name, out.String())
	case <-time.After(60 * time.Second):
		p.t.Fatalf("%s did not start: %s", p.name, out.String())
	}
}

// kill sends SIGKILL and waits for the process to go.
func (p *serverProc) kill() {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-done
}

// stop sends SIGINT (shutdown without leaving) and waits.
func (p *serverProc) stop() {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	select {
	case <-done:
		return
	default:
	}
	_ = cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		p.t.Errorf("%s did not stop on SIGINT", p.name)
	}
}

func (p *serverProc) api() *api.Client {
	c, err := api.NewClient(&api.Config{Address: "http://" + p.httpAddr, HTTPClient: &http.Client{Timeout: 10 * time.Second}})
	if err != nil {
		p.t.Fatal(err)
	}
	return c
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

// clusterLeader returns the process that leads, as the given processes see
// it, or nil.
func clusterLeader(procs []*serverProc, alive []*serverProc) *serverProc {
	for _, p := range alive {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		addr, err := p.api().Leader(ctx)
		cancel()
		if err != nil || addr == "" {
			continue
		}
		for _, q := range procs {
			if q.raftAddr == addr {
				return q
			}
		}
	}
	return nil
}

// waitClusterLeader polls until the processes agree on a leader.
func waitClusterLeader(t testing.TB, procs, alive []*serverProc, not *serverProc, within time.Duration) *serverProc {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if l := clusterLeader(procs, alive); l != nil && l != not {
			return l
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no leader within %s", within)
	return nil
}

func pipelineSpec(name string) []byte {
	return []byte("name: " + name + "\njobs:\n  a:\n    resources: { cpu: 10, memory: 1 }\n    steps: [ 'true' ]\n")
}

// TestCluster_KillLeaderThreeTimes is the availability test with the real
// binary: three servers (one also a client running the jobs), eight
// submitters posting pipelines with Idempotency-Keys round-robin across
// the servers, and the leader SIGKILLed three times (and restarted on its
// data dir). Every submit that got a 2xx must exist exactly once and
// reach a final state.
func TestCluster_KillLeaderThreeTimes(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process cluster test")
	}
	procs := startServerCluster(t, 3, map[int][]string{2: {"-client", "-driver", "exec"}})
	waitClusterLeader(t, procs, procs, nil, 30*time.Second)

	var (
		mu    sync.Mutex
		acked = map[string]string{} // idempotency key → pipeline ID
		alive = slices.Clone(procs)
	)
	aliveNow := func() []*serverProc {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(alive)
	}
	ctx, stopSubmitters := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			next := w
			for n := 0; ctx.Err() == nil; n++ {
				key := fmt.Sprintf("w%d-p%d", w, n)
				// Retry the same key on the next server until a 2xx, as a
				// careful client would; give up only when the test ends.
				for ctx.Err() == nil {
					servers := procs
					p := servers[next%len(servers)]
					next++
					sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
					pl, err := p.api().SubmitPipeline(sctx, pipelineSpec(key), &api.SubmitOptions{IdempotencyKey: key})
					cancel()
					if err == nil {
						mu.Lock()
						if prev, ok := acked[key]; ok && prev != pl.ID {
							t.Errorf("key %s acknowledged as %s and as %s", key, prev, pl.ID)
						}
						acked[key] = pl.ID
						mu.Unlock()
						break
					}
					time.Sleep(50 * time.Millisecond)
				}
				time.Sleep(20 * time.Millisecond)
			}
		}(w)
	}

	var failovers, firstWrites []time.Duration
	for k := 1; k <= 3; k++ {
		time.Sleep(1500 * time.Millisecond)
		l := waitClusterLeader(t, procs, aliveNow(), nil, 30*time.Second)
		mu.Lock()
		alive = slices.DeleteFunc(alive, func(p *serverProc) bool { return p == l })
		mu.Unlock()
		start := time.Now()
		l.kill()
		nl := waitClusterLeader(t, procs, aliveNow(), l, 30*time.Second)
		failover := time.Since(start)
		// The first write accepted after the kill.
		probe := fmt.Sprintf("probe-%d", k)
		for {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			pl, err := nl.api().SubmitPipeline(sctx, pipelineSpec(probe), &api.SubmitOptions{IdempotencyKey: probe})
			cancel()
			if err == nil {
				mu.Lock()
				acked[probe] = pl.ID
				mu.Unlock()
				break
			}
			if time.Since(start) > 30*time.Second {
				t.Fatalf("kill %d: no write accepted within 30s: %v", k, err)
			}
			time.Sleep(10 * time.Millisecond)
		}
		firstWrite := time.Since(start)
		failovers = append(failovers, failover)
		firstWrites = append(firstWrites, firstWrite)
		t.Logf("kill %d: leader %s SIGKILLed; %s leads after %s; first write after %s",
			k, l.name, nl.name, failover.Round(time.Millisecond), firstWrite.Round(time.Millisecond))
		l.start()
		mu.Lock()
		alive = append(alive, l)
		mu.Unlock()
	}
	time.Sleep(time.Second)
	stopSubmitters()
	wg.Wait()

	// Every acknowledged key exists exactly once and reaches a final state.
	mu.Lock()
	want := len(acked)
	mu.Unlock()
	if want < 20 {
		t.Fatalf("only %d submits acknowledged", want)
	}
	c := procs[0].api()
	deadline := time.Now().Add(90 * time.Second)
	for {
		lctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		stubs, _, err := c.Pipelines(lctx, nil)
		cancel()
		if err == nil {
			byName := map[string][]*api.PipelineStub{}
			for _, s := range stubs {
				byName[s.Name] = append(byName[s.Name], s)
			}
			unfinished := 0
			for key, id := range acked {
				got := byName[key]
				if len(got) != 1 || got[0].ID != id {
					t.Fatalf("acknowledged key %s (pipeline %s) exists %d times", key, id, len(got))
				}
				switch got[0].State {
				case api.StateSucceeded, api.StateFailed, api.StateCancelled:
				default:
					unfinished++
				}
			}
			for name, ps := range byName {
				if len(ps) > 1 {
					t.Fatalf("key %s registered %d times", name, len(ps))
				}
			}
			if unfinished == 0 {
				t.Logf("%d acknowledged pipelines (%d in state), each exactly once, all final; failover %v, first write %v",
					want, len(stubs), failovers, firstWrites)
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d of %d acknowledged pipelines not final after 90s", unfinished, want)
			}
		} else if time.Now().After(deadline) {
			t.Fatalf("list pipelines: %v", err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// TestCluster_OperatorCLI drives a three-process cluster with the CLI as
// an operator would: members, peers, a snapshot saved and restored, a
// follower leaving on SIGTERM and the leader leaving on 'server leave';
// the last server keeps taking writes.
func TestCluster_OperatorCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process cluster test")
	}
	procs := startServerCluster(t, 3, nil, "-raft-heartbeat-timeout", "300ms", "-raft-election-timeout", "300ms")
	l := waitClusterLeader(t, procs, procs, nil, 30*time.Second)
	var f *serverProc
	for _, p := range procs {
		if p != l {
			f = p
			break
		}
	}
	addr := "http://" + f.httpAddr
	out, errOut, code := cli(t, addr, "server", "members")
	if code != 0 || strings.Count(out, "alive") != 3 || strings.Count(out, "Leader") != 1 {
		t.Fatalf("server members: %d\n%s%s", code, out, errOut)
	}
	out, errOut, code = cli(t, addr, "operator", "raft", "list-peers")
	if code != 0 || strings.Count(out, "true") != 3 || !strings.Contains(out, l.name) {
		t.Fatalf("list-peers: %d\n%s%s", code, out, errOut)
	}

	c := f.api()
	submit := func(key string) string {
		t.Helper()
		p, err := c.SubmitPipeline(context.Background(), pipelineSpec(key), &api.SubmitOptions{IdempotencyKey: key})
		if err != nil {
			t.Fatal(err)
		}
		return p.ID
	}
	count := func() int {
		stubs, _, err := c.Pipelines(context.Background(), nil)
		if err != nil {
			t.Fatal(err)
		}
		return len(stubs)
	}
	submit("before")
	snap := filepath.Join(t.TempDir(), "backup.snap")
	if out, errOut, code := cli(t, addr, "operator", "snapshot", "save", snap); code != 0 {
		t.Fatalf("snapshot save: %s%s", out, errOut)
	}
	submit("after")
	if n := count(); n != 2 {
		t.Fatalf("%d pipelines before restore", n)
	}
	if out, errOut, code := cli(t, addr, "operator", "snapshot", "restore", snap); code != 0 || !strings.Contains(out, "Restored snapshot") {
		t.Fatalf("snapshot restore: %s%s", out, errOut)
	}
	if n := count(); n != 1 {
		t.Fatalf("%d pipelines after restore, want 1", n)
	}

	// A follower leaves on SIGTERM; the leader leaves on 'server leave'.
	var other *serverProc
	for _, p := range procs {
		if p != l && p != f {
			other = p
		}
	}
	_ = other.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-other.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not stop on SIGTERM", other.name)
	}
	if code := other.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("%s exited %d after SIGTERM: %s", other.name, code, other.out.String())
	}
	peers, err := c.Peers(context.Background())
	if err != nil || len(peers) != 2 {
		t.Fatalf("peers after a graceful leave: %v %v", peers, err)
	}
	if out, errOut, code := cli(t, "http://"+l.httpAddr, "server", "leave"); code != 0 {
		t.Fatalf("server leave: %s%s", out, errOut)
	}
	select {
	case <-l.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not stop after 'server leave'", l.name)
	}
	nl := waitClusterLeader(t, procs, []*serverProc{f}, nil, 30*time.Second)
	if nl != f {
		t.Fatalf("leader %s, want the last server %s", nl.name, f.name)
	}
	submit("alone")
	if peers, err := c.Peers(context.Background()); err != nil || len(peers) != 1 {
		t.Fatalf("peers after both left: %v %v", peers, err)
	}
}

// BenchmarkCluster_FailoverSIGKILL measures, over 10 kills of the real
// binary with default Raft timeouts, the time from SIGKILL of the leader to
// the first write a surviving server accepts. The killed server restarts
// on its data dir before the next kill. Run with -benchtime 1x.
func BenchmarkCluster_FailoverSIGKILL(b *testing.B) {
	procs := startServerCluster(b, 3, nil)
	const runs = 10
	var took []time.Duration
	for i := 0; i < runs; i++ {
		// Every kill starts from a steady cluster: all three know the leader.
		l := waitClusterLeader(b, procs, procs, nil, 30*time.Second)
		for _, p := range procs {
			waitClusterLeader(b, procs, []*serverProc{p}, nil, 30*time.Second)
		}
		var survivor *serverProc
		for _, p := range procs {
			if p != l {
				survivor = p
				break
			}
		}
		c := survivor.api()
		start := time.Now()
		l.kill()
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_, err := c.SubmitPipeline(ctx, pipelineSpec(fmt.Sprintf("failover-%d", i)), nil)
			cancel()
			if err == nil {
				break
			}
			if time.Since(start) > 30*time.Second {
				b.Fatalf("kill %d: no write accepted within 30s: %v", i, err)
			}
			time.Sleep(5 * time.Millisecond)
		}
		took = append(took, time.Since(start))
		l.start()
	}
	slices.Sort(took)
	b.ReportMetric(float64(took[len(took)/2])/float64(time.Millisecond), "median-ms")
	b.ReportMetric(float64(took[len(took)-1])/float64(time.Millisecond), "max-ms")
	b.Logf("SIGKILL → first write: %v", took)
}
