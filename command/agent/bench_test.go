package agent_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ciplat/ciplat/api"
	"github.com/ciplat/ciplat/command/agent"
)

// The benchmarks below measure the numbers quoted in the README. Each runs a
// fixed number of samples whatever b.N is (run them with -benchtime 1x) and
// reports percentiles with b.ReportMetric.

const trueSpec = "name: bench\njobs:\n  a:\n    resources: { cpu: 10, memory: 1 }\n    steps: [ 'true' ]\n"

// benchAgent starts an in-process agent: a server (Raft on disk in a temp
// dir) and, when withClient, a client with the given drivers.
func benchAgent(b *testing.B, withClient bool, drivers ...string) (*agent.Agent, *api.Client) {
	b.Helper()
	cfg := &agent.Config{
		Server: true, Client: withClient, Dev: true,
		DataDir: b.TempDir(), HTTPAddr: "127.0.0.1:0", NodeName: "bench",
		SchedulerWorkers: 2, Drivers: drivers, Labels: map[string]string{},
	}
	if len(drivers) == 0 {
		cfg.Drivers = []string{"exec"}
	}
	a, err := agent.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(a.Shutdown)
	c, err := api.NewClient(&api.Config{Address: "http://" + a.HTTPAddr()})
	if err != nil {
		b.Fatal(err)
	}
	return a, c
}

func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := int(float64(len(s)-1) * p)
	return s[i]
}

func reportLatency(b *testing.B, d []time.Duration, prefix string) {
	b.ReportMetric(float64(percentile(d, 0.50).Microseconds())/1000, prefix+"p50-ms")
	b.ReportMetric(float64(percentile(d, 0.95).Microseconds())/1000, prefix+"p95-ms")
	b.ReportMetric(float64(percentile(d, 0.99).Microseconds())/1000, prefix+"p99-ms")
}

// submitMany posts n pipelines from `workers` goroutines and returns each
// submit's latency (HTTP POST → 201) and the pipeline IDs.
func submitMany(b *testing.B, c *api.Client, n, workers int) ([]time.Duration, []string) {
	b.Helper()
	lat := make([]time.Duration, n)
	ids := make([]string, n)
	var wg sync.WaitGroup
	next := make(chan int)
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				start := time.Now()
				p, err := c.SubmitPipeline(context.Background(), []byte(trueSpec), nil)
				if err != nil {
					errs <- err
					return
				}
				lat[i] = time.Since(start)
				ids[i] = p.ID
			}
		}()
	}
	for i := 0; i < n; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	return lat, ids
}

// waitDone blocks (blocking queries) until the pipeline has ended.
func waitDone(b *testing.B, c *api.Client, id string) *api.Pipeline {
	b.Helper()
	var idx uint64
	for {
		p, meta, err := c.Pipeline(context.Background(), id, &api.QueryOptions{WaitIndex: idx, WaitTime: time.Minute})
		if err != nil {
			b.Fatal(err)
		}
		if api.TerminalState(p.State) {
			return p
		}
		idx = meta.LastIndex
	}
}

// BenchmarkSubmit measures HTTP POST /v1/pipelines → 201 (one Raft entry on
// disk) with 1 and 16 concurrent submitters, on a server whose jobs are not
// run (no client) and on a dev agent that runs them as they come.
func BenchmarkSubmit(b *testing.B) {
	for _, mode := range []string{"idle", "running"} {
		for _, workers := range []int{1, 16} {
			b.Run(fmt.Sprintf("%s/submitters=%d", mode, workers), func(b *testing.B) {
				_, c := benchAgent(b, mode == "running")
				const n = 1000
				b.ResetTimer()
				start := time.Now()
				lat, _ := submitMany(b, c, n, workers)
				b.ReportMetric(float64(n)/time.Since(start).Seconds(), "submits/s")
				reportLatency(b, lat, "")
			})
		}
	}
}

// BenchmarkSubmitToSucceeded measures submit → SUCCEEDED for a one-step
// `true` pipeline on a dev agent with the exec driver, one in flight.
func BenchmarkSubmitToSucceeded(b *testing.B) {
	_, c := benchAgent(b, true)
	const n = 200
	lat := make([]time.Duration, 0, n)
	b.ResetTimer()
	for i := 0; i < n; i++ {
		start := time.Now()
		p, err := c.SubmitPipeline(context.Background(), []byte(trueSpec), nil)
		if err != nil {
			b.Fatal(err)
		}
		if got := waitDone(b, c, p.ID); got.State != api.StateSucceeded {
			b.Fatalf("pipeline %s", got.State)
		}
		lat = append(lat, time.Since(start))
	}
	reportLatency(b, lat, "")
}

// BenchmarkBurst submits 200 one-step pipelines at once (16 submitters) and
// measures each one's submit → SUCCEEDED and the jobs completed per second.
func BenchmarkBurst(b *testing.B) {
	for _, driver := range []string{"exec", "mock"} {
		b.Run("driver="+driver, func(b *testing.B) {
			_, c := benchAgent(b, true, driver)
			const n = 200
			b.ResetTimer()
			start := time.Now()
			_, ids := submitMany(b, c, n, 16)
			done := make([]time.Duration, n)
			var wg sync.WaitGroup
			for i, id := range ids {
				wg.Add(1)
				go func() {
					defer wg.Done()
					waitDone(b, c, id)
					done[i] = time.Since(start)
				}()
			}
			wg.Wait()
			b.ReportMetric(float64(n)/time.Since(start).Seconds(), "jobs/s")
			reportLatency(b, done, "complete-")
		})
	}
}

// BenchmarkAgentRSS runs the real binary (`ciplat agent -dev -driver mock`),
// finishes 10,000 one-job pipelines, then reads the agent's resident memory
// and times GET /v1/pipelines (all 10,000) for a UI.
func BenchmarkAgentRSS(b *testing.B) {
	cmd := exec.Command(binPath, "agent", "-dev", "-data-dir", b.TempDir(), "-http-addr", "127.0.0.1:0", "-driver", "mock", "-log-level", "error")
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = cmd.Process.Signal(syscall.SIGINT); _ = cmd.Wait() }()
	var addr string
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "HTTP API: "); ok {
			addr = v
			break
		}
	}
	go func() { _, _ = io.Copy(io.Discard, stdout) }()
	c, err := api.NewClient(&api.Config{Address: addr})
	if err != nil {
		b.Fatal(err)
	}
	const n = 10000
	_, ids := submitMany(b, c, n, 16)
	for _, id := range ids[len(ids)-50:] {
		waitDone(b, c, id)
	}
	// Wait until every pipeline has ended (one list read per change).
	var idx uint64
	for {
		list, meta, err := c.Pipelines(context.Background(), &api.QueryOptions{WaitIndex: idx, WaitTime: time.Minute})
		if err != nil {
			b.Fatal(err)
		}
		if len(list) == n && !slices.ContainsFunc(list, func(p *api.PipelineStub) bool { return !api.TerminalState(p.State) }) {
			break
		}
		idx = meta.LastIndex
	}
	var lat []time.Duration
	for i := 0; i < 20; i++ {
		start := time.Now()
		if _, _, err := c.Pipelines(context.Background(), nil); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	b.ReportMetric(float64(percentile(lat, 0.95).Microseconds())/1000, "list10k-p95-ms")
	b.ReportMetric(float64(rssKiB(b, cmd.Process.Pid))/1024, "rss-MiB")
}

func rssKiB(b *testing.B, pid int) int {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			return n
		}
	}
	b.Fatal("no VmRSS")
	return 0
}
