package server

import (
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"
)

// The cluster benchmarks run a fixed number of samples whatever b.N is
// (run them with -benchtime 1x) and report percentiles with ReportMetric.
// Numbers are in docs/cluster.md.

func pct(d []time.Duration, p float64) float64 {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return float64(s[int(float64(len(s)-1)*p)]) / float64(time.Millisecond)
}

// BenchmarkCluster_Submit measures POST /v1/pipelines latency on a
// three-server cluster (production Raft timeouts, raft-boltdb on disk),
// sent to the leader or to a follower (one extra HTTP hop), by 1 or 16
// concurrent submitters.
func BenchmarkCluster_Submit(b *testing.B) {
	// replication=sync is what servers run (MaxRPCsInFlight 1, raft.go);
	// replication=pipelined is hashicorp/raft's default, for the ratio.
	for _, repl := range []struct {
		name     string
		inFlight int
	}{{"sync", 1}, {"pipelined", 2}} {
		b.Run("replication="+repl.name, func(b *testing.B) {
			c := newTestCluster(b, 3, func(cfg *Config) {
				cfg.Dev = false
				cfg.Raft = RaftConfig{MaxRPCsInFlight: repl.inFlight}
			})
			benchClusterSubmit(b, c)
		})
	}
}

func benchClusterSubmit(b *testing.B, c *testCluster) {
	for _, target := range []string{"leader", "follower"} {
		for _, submitters := range []int{1, 16} {
			b.Run(fmt.Sprintf("to=%s/submitters=%d", target, submitters), func(b *testing.B) {
				l := c.waitStable(3)
				dst := l
				if target == "follower" {
					dst = c.followers()[0]
				}
				const perSubmitter = 100
				lat := make([]time.Duration, 0, submitters*perSubmitter)
				var mu sync.Mutex
				var wg sync.WaitGroup
				start := time.Now()
				for w := 0; w < submitters; w++ {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for i := 0; i < perSubmitter; i++ {
							t0 := time.Now()
							_, code, err := dst.submitOnce(oneJob, "")
							d := time.Since(t0)
							if err != nil || code != http.StatusCreated {
								b.Errorf("submit: HTTP %d %v", code, err)
								return
							}
							mu.Lock()
							lat = append(lat, d)
							mu.Unlock()
						}
					}()
				}
				wg.Wait()
				elapsed := time.Since(start)
				b.ReportMetric(pct(lat, 0.50), "p50-ms")
				b.ReportMetric(pct(lat, 0.95), "p95-ms")
				b.ReportMetric(pct(lat, 0.99), "p99-ms")
				b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "submits/s")
			})
		}
	}
}

// BenchmarkCluster_Failover measures, over 10 kills, the time from the
// leader's death (in-process shutdown without leave: its Raft and serf
// stop answering at once) to the first write accepted by a surviving
// server, for three Raft heartbeat timeouts. The killed server restarts on
// its data dir before the next run.
func BenchmarkCluster_Failover(b *testing.B) {
	for _, hb := range []time.Duration{time.Second, 500 * time.Millisecond, 200 * time.Millisecond} {
		b.Run(fmt.Sprintf("heartbeat=%s", hb), func(b *testing.B) {
			c := newTestCluster(b, 3, func(cfg *Config) {
				cfg.Dev = false
				cfg.Raft = RaftConfig{HeartbeatTimeout: hb, ElectionTimeout: hb, LeaderLeaseTimeout: hb / 2}
			})
			const runs = 10
			var took []time.Duration
			for i := 0; i < runs; i++ {
				l := c.waitStable(3)
				// Wait until every server has heard from the leader, so each
				// run starts from a steady cluster.
				for _, cs := range c.running() {
					waitForTB(b, "steady followers", func() bool {
						return cs == l || time.Since(cs.srv.raft.LastContact()) < hb/2
					})
				}
				survivor := c.followers()[0]
				start := time.Now()
				l.kill()
				for {
					_, code, _ := survivor.submitOnce(oneJob, "")
					if code == http.StatusCreated {
						break
					}
					if time.Since(start) > 30*time.Second {
						b.Fatalf("run %d: no write accepted within 30s", i)
					}
					time.Sleep(5 * time.Millisecond)
				}
				took = append(took, time.Since(start))
				l.start()
			}
			b.ReportMetric(pct(took, 0.5), "median-ms")
			b.ReportMetric(pct(took, 1), "max-ms")
			b.Logf("heartbeat %s: failover times %v", hb, took)
		})
	}
}
