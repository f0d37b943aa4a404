package agent_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"testing"
	"time"

	"github.com/hashicorp/go-memdb"
	"github.com/hashicorp/memberlist"

	"github.com/ciplat/ciplat/fsm/state"
	"github.com/ciplat/ciplat/gossip"
	"github.com/ciplat/ciplat/server"
)

// lanTimings gives a loopback member memberlist's LAN timings (probe every
// 1s, gossip every 200ms, push/pull every 30s), so the numbers are those of
// a real network's defaults, not of -dev.
func lanTimings(mc *memberlist.Config) {
	lan := memberlist.DefaultLANConfig()
	mc.ProbeInterval, mc.ProbeTimeout = lan.ProbeInterval, lan.ProbeTimeout
	mc.GossipInterval, mc.GossipNodes = lan.GossipInterval, lan.GossipNodes
	mc.PushPullInterval, mc.RetransmitMult, mc.SuspicionMult = lan.PushPullInterval, lan.RetransmitMult, lan.SuspicionMult
}

// BenchmarkGossipCapacityToLeader measures the time from a client changing
// its capacity in the gossip pool to the leader's state holding it (gossip
// broadcast, the leader's liveness loop, one Raft entry), in a pool of 100
// simulated clients and the server, all in this process with LAN gossip
// timings. It reports the median and p99 over CIPLAT_BENCH_SAMPLES changes
// (default 40), each on a node whose rate-limit window has passed.
func BenchmarkGossipCapacityToLeader(b *testing.B) {
	const members = 100
	samples := 40
	if v := getenvInt("CIPLAT_BENCH_SAMPLES"); v > 0 {
		samples = v
	}
	srv, err := server.New(server.Config{DataDir: b.TempDir(), RaftAddr: "127.0.0.1:0", Bootstrap: true, Dev: true,
		Nodes:  server.NodesConfig{GossipTune: lanTimings},
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = srv.Shutdown() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := srv.WaitForLeader(ctx); err != nil {
		b.Fatal(err)
	}
	pools := make([]*gossip.Pool, members)
	record := func(i, cpu int) *gossip.NodeRecord {
		return &gossip.NodeRecord{NodeID: fmt.Sprintf("sim-%03d", i), Name: fmt.Sprintf("sim-%03d", i),
			OS: "linux", Arch: "amd64", Resources: gossip.Resources{CPU: cpu, MemoryMB: 8192},
			Drivers: map[string]gossip.DriverHealth{"exec": {Detected: true, Healthy: true}},
			Labels:  map[string]string{"rack": fmt.Sprint(i % 10)}}
	}
	for i := range pools {
		p, err := gossip.New(gossip.Config{Name: gossip.NewName("sim"), Role: gossip.RoleClient,
			NodeID: fmt.Sprintf("sim-%03d", i), Tune: lanTimings})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = p.Shutdown() })
		p.SetLocal(record(i, 4000))
		// Each joins a random earlier member, as clients joining through
		// whichever server answered would.
		seed := srv.GossipAddr()
		if i > 0 && i%2 == 1 {
			seed = pools[i/2].Addr()
		}
		if _, err := p.Join([]string{seed}); err != nil {
			b.Fatal(err)
		}
		pools[i] = p
	}
	joined := time.Now()
	waitState(b, srv, "every simulated node registered", 2*time.Minute, func(st *state.StateStore) bool {
		nodes, _ := st.Nodes(nil)
		return len(nodes) == members
	})
	b.Logf("%d simulated nodes registered from gossip in %v", members, time.Since(joined))
	// Let every node's rate-limit window pass.
	time.Sleep(server.DefaultMinNodeUpdateInterval)

	var took []time.Duration
	b.ResetTimer()
	for s := range samples {
		i := s % members
		cpu := 4000 + 1000*(s/members+1)
		id := fmt.Sprintf("sim-%03d", i)
		start := time.Now()
		pools[i].SetLocal(record(i, cpu))
		if os.Getenv("CIPLAT_BENCH_VERBOSE") != "" {
			for srv.GossipPool().Record(id).Resources.CPU != cpu {
				time.Sleep(time.Millisecond)
			}
			b.Logf("sample %d: in the server's pool after %v", s, time.Since(start))
		}
		waitState(b, srv, "the change of "+id, 2*time.Minute, func(st *state.StateStore) bool {
			n, _ := st.NodeByID(nil, id)
			return n != nil && n.Resources.CPU == cpu
		})
		took = append(took, time.Since(start))
		if os.Getenv("CIPLAT_BENCH_VERBOSE") != "" {
			b.Logf("sample %d (%s): %v", s, id, took[len(took)-1])
		}
	}
	b.StopTimer()
	sort.Slice(took, func(i, j int) bool { return took[i] < took[j] })
	b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "ms-median")
	b.ReportMetric(float64(took[len(took)*99/100].Microseconds())/1000, "ms-p99")
	b.Logf("capacity change → leader state, %d members, %d samples: median %v, p99 %v, max %v",
		members+1, samples, took[len(took)/2], took[len(took)*99/100], took[len(took)-1])
}

// waitState waits, with blocking queries on the nodes table, until cond
// holds on the server's state.
func waitState(b *testing.B, srv *server.Server, what string, within time.Duration, cond func(*state.StateStore) bool) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	var idx uint64
	for {
		ok := false
		next, err := srv.State().BlockingQuery(ctx, idx, within, func(ws memdb.WatchSet, st *state.StateStore) (uint64, error) {
			ok = cond(st)
			if ok {
				return idx + 1, nil
			}
			return st.IndexWatch(ws, state.TableNodes), nil
		})
		if ok {
			return
		}
		if err != nil {
			b.Fatalf("waiting for %s: %v", what, err)
		}
		idx = next
	}
}

// getenvInt reads a positive number from the environment; 0 when unset.
func getenvInt(name string) int {
	var n int
	if _, err := fmt.Sscan(os.Getenv(name), &n); err != nil || n < 0 {
		return 0
	}
	return n
}
