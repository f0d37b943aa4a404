package server

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ciplat/ciplat/fsm/structs"
)

var (
	simNodes   = flag.Int("sim.nodes", 1000, "BenchmarkPlacementThroughRaft: simulated nodes")
	simJobs    = flag.Int("sim.jobs", 1000, "BenchmarkPlacementThroughRaft: jobs per phase")
	simRate    = flag.Int("sim.rate", 100, "BenchmarkPlacementThroughRaft: jobs/s of the paced phase")
	simWorkers = flag.String("sim.workers", "2,8,32", "BenchmarkPlacementThroughRaft: scheduler worker counts to run, comma-separated")
)

// BenchmarkPlacementThroughRaft is the end-to-end scheduler simulation: a
// real server in-process (Raft on raft-boltdb with fsync, the HTTP API)
// with -sim.nodes simulated nodes registered through POST
// /v1/client/nodes (mock and exec drivers healthy), then two phases of
// -sim.jobs jobs each, everything through the HTTP API:
//
//	paced      jobs submitted at -sim.rate per second (below saturation);
//	           each is followed with blocking queries (GET /v1/jobs/{id}
//	           ?index=) until SCHEDULED: submit → SCHEDULED p50/p95/p99
//	open loop  16 submitters POST /v1/jobs as fast as they can while the
//	           scheduler runs: the same latency at saturation, and jobs /
//	           (last SCHEDULED − first submit) as placements/s
//	backlog    scheduling paused (workers 0), the jobs submitted, then the
//	           workers resumed: sustained placements/s through Raft, and
//	           placements per Raft entry (the applier's batching)
//
// It runs a fixed workload whatever b.N is: run it with -benchtime 1x.
//
//	go test ./server -run '^$' -bench PlacementThroughRaft -benchtime 1x -timeout 30m
func BenchmarkPlacementThroughRaft(b *testing.B) {
	for _, w := range strings.Split(*simWorkers, ",") {
		workers, err := strconv.Atoi(strings.TrimSpace(w))
		if err != nil || workers < 1 {
			b.Fatalf("-sim.workers %q: want positive integers", *simWorkers)
		}
		b.Run(fmt.Sprintf("nodes=%d/jobs=%d/workers=%d", *simNodes, *simJobs, workers), func(b *testing.B) {
			sim := newSim(b, workers)
			sim.registerNodes(*simNodes)
			b.ResetTimer()

			lat, _ := sim.submitAndFollow(*simJobs, *simRate)
			slices.Sort(lat)
			b.ReportMetric(simMs(simPct(lat, 0.50)), "paced-p50-ms")
			b.ReportMetric(simMs(simPct(lat, 0.95)), "paced-p95-ms")
			b.ReportMetric(simMs(simPct(lat, 0.99)), "paced-p99-ms")

			lat, span := sim.submitAndFollow(*simJobs, 0)
			slices.Sort(lat)
			b.ReportMetric(simMs(simPct(lat, 0.50)), "sat-p50-ms")
			b.ReportMetric(simMs(simPct(lat, 0.95)), "sat-p95-ms")
			b.ReportMetric(float64(len(lat))/span.Seconds(), "openloop-placements/s")

			applies0, placed0 := sim.srv.metrics.planApplies.Load(), sim.srv.metrics.placements.Load()
			n, d := sim.backlog(*simJobs, workers)
			b.ReportMetric(float64(n)/d.Seconds(), "placements/s")
			if applies := sim.srv.metrics.planApplies.Load() - applies0; applies > 0 {
				b.ReportMetric(float64(sim.srv.metrics.placements.Load()-placed0)/float64(applies), "placements/raft-entry")
			}
			b.ReportMetric(float64(sim.srv.metrics.planConflicts.Load()), "plan-conflicts")
		})
	}
}

func simMs(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func simPct(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[int(float64(len(sorted)-1)*p)]
}

// sim is one benchmark's server and HTTP client.
type sim struct {
	b   *testing.B
	srv *Server
	web *httptest.Server
	cl  *http.Client
	seq int
}

func newSim(b *testing.B, workers int) *sim {
	b.Helper()
	s, err := New(Config{DataDir: b.TempDir(), RaftAddr: "127.0.0.1:0", Bootstrap: true, Dev: true,
		SchedulerWorkers: workers, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		// The simulated nodes send no heartbeats: they stay up all run.
		Nodes: NodesConfig{HeartbeatTTL: time.Hour}})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.WaitForLeader(ctx); err != nil {
		b.Fatal(err)
	}
	web := httptest.NewServer(s.HTTPHandler())
	b.Cleanup(func() {
		web.Close()
		_ = s.Shutdown()
	})
	tr := &http.Transport{MaxIdleConns: 4096, MaxIdleConnsPerHost: 4096}
	return &sim{b: b, srv: s, web: web, cl: &http.Client{Transport: tr}}
}

// call sends a request and decodes a 2xx JSON answer into out; it returns
// the X-Ciplat-Index.
func (s *sim) call(method, path string, body []byte, out any) (uint64, error) {
	req, err := http.NewRequest(method, s.web.URL+path, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	setBodyType(req, body)
	resp, err := s.cl.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		msg, _ := io.ReadAll(resp.Body)
		return 0, fmt.Errorf("%s %s: HTTP %d %s", method, path, resp.StatusCode, msg)
	}
	idx, _ := strconv.ParseUint(resp.Header.Get("X-Ciplat-Index"), 10, 64)
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return idx, nil
	}
	return idx, json.NewDecoder(resp.Body).Decode(out)
}

// parallel runs f(i) for i < n on `width` goroutines; the first error fails.
func (s *sim) parallel(n, width int, f func(i int) error) {
	s.b.Helper()
	var wg sync.WaitGroup
	next := make(chan int)
	errs := make(chan error, width)
	for w := 0; w < width; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := f(i); err != nil {
					errs <- err
					for range next {
					}
					return
				}
			}
		}()
	}
	for i := 0; i < n; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	select {
	case err := <-errs:
		s.b.Fatal(err)
	default:
	}
}

// registerNodes registers n nodes of 4 cores / 8 GiB in three zones.
func (s *sim) registerNodes(n int) {
	s.parallel(n, 32, func(i int) error {
		node := structs.Node{ID: fmt.Sprintf("sim-%05d", i), Name: fmt.Sprintf("sim-%05d", i),
			Resources:  structs.Resources{CPU: 4000, MemoryMB: 8192},
			Attributes: map[string]string{"os": "linux", "label.zone": string(rune('a' + i%3))},
			Drivers: map[string]*structs.DriverInfo{
				"mock": {Detected: true, Healthy: true}, "exec": {Detected: true, Healthy: true},
			}}
		body, _ := json.Marshal(node)
		_, err := s.call("POST", "/v1/client/nodes", body, nil)
		return err
	})
}

// submit posts one job and returns its ID and the submit's Raft index.
func (s *sim) submit(i int) (string, uint64, error) {
	spec := fmt.Sprintf("name: sim-%d\ndriver: mock\npriority: %d\nresources: { cpu: 100, memory: 128 }\nsteps: [ 'true' ]\n",
		i, 10+i%80)
	var p struct {
		Jobs []*jobJSON `json:"jobs"`
	}
	idx, err := s.call("POST", "/v1/jobs", []byte(spec), &p)
	if err != nil {
		return "", 0, err
	}
	if len(p.Jobs) != 1 {
		return "", 0, fmt.Errorf("submit: %d jobs in the answer", len(p.Jobs))
	}
	return p.Jobs[0].ID, idx, nil
}

// awaitScheduled follows a job with blocking queries until it leaves
// PENDING and returns when it saw that.
func (s *sim) awaitScheduled(id string, index uint64) (time.Time, error) {
	deadline := time.Now().Add(5 * time.Minute)
	for time.Now().Before(deadline) {
		var j jobJSON
		idx, err := s.call("GET", fmt.Sprintf("/v1/jobs/%s?index=%d&wait=60s", id, index), nil, &j)
		if err != nil {
			return time.Time{}, err
		}
		if j.State != structs.JobPending {
			return time.Now(), nil
		}
		index = idx
	}
	return time.Time{}, fmt.Errorf("job %s not scheduled within 5 minutes", id)
}

// submitAndFollow submits n jobs from 16 submitters while the scheduler
// runs, at rate jobs/s (0: as fast as they can), and returns each job's
// submit → SCHEDULED latency and the whole span.
func (s *sim) submitAndFollow(n, rate int) ([]time.Duration, time.Duration) {
	lat := make([]time.Duration, n)
	var (
		watchers sync.WaitGroup
		mu       sync.Mutex
		werr     error
		last     time.Time
	)
	start := time.Now()
	base := s.seq
	s.seq += n
	s.parallel(n, 16, func(i int) error {
		if rate > 0 {
			// Pacing, not waiting for a condition: job i is due at i/rate.
			time.Sleep(time.Until(start.Add(time.Duration(i) * time.Second / time.Duration(rate))))
		}
		t0 := time.Now()
		id, idx, err := s.submit(base + i)
		if err != nil {
			return err
		}
		watchers.Add(1)
		go func() {
			defer watchers.Done()
			t1, err := s.awaitScheduled(id, idx)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				werr = err
				return
			}
			lat[i] = t1.Sub(t0)
			if t1.After(last) {
				last = t1
			}
		}()
		return nil
	})
	watchers.Wait()
	if werr != nil {
		s.b.Fatal(werr)
	}
	return lat, last.Sub(start)
}

// backlog pauses scheduling, submits n jobs, resumes `workers` workers and
// returns how many were placed and how long the placements took.
func (s *sim) backlog(n, workers int) (int, time.Duration) {
	if _, err := s.call("PUT", "/v1/operator/scheduler", []byte(`{"workers": 0}`), nil); err != nil {
		s.b.Fatal(err)
	}
	waitUntil(s.b, "workers to stop", func() bool { return s.srv.metrics.workers.Load() == 0 })
	ids := make([]string, n)
	idxs := make([]uint64, n)
	base := s.seq
	s.seq += n
	s.parallel(n, 16, func(i int) error {
		var err error
		ids[i], idxs[i], err = s.submit(base + i)
		return err
	})
	waitUntil(s.b, "the backlog in the broker", func() bool { return s.srv.broker.Stats().Ready == n })

	var (
		watchers sync.WaitGroup
		mu       sync.Mutex
		last     time.Time
		werr     error
	)
	for i := range ids {
		watchers.Add(1)
		go func() {
			defer watchers.Done()
			t1, err := s.awaitScheduled(ids[i], idxs[i])
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				werr = err
			} else if t1.After(last) {
				last = t1
			}
		}()
	}
	start := time.Now()
	body := fmt.Sprintf(`{"workers": %d}`, workers)
	if _, err := s.call("PUT", "/v1/operator/scheduler", []byte(body), nil); err != nil {
		s.b.Fatal(err)
	}
	watchers.Wait()
	if werr != nil {
		s.b.Fatal(werr)
	}
	return n, last.Sub(start)
}

// waitUntil polls cond with a deadline (a benchmark's harness state).
func waitUntil(b *testing.B, what string, cond func() bool) {
	b.Helper()
	deadline := time.Now().Add(5 * time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			b.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
