package server

import (
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ciplat/ciplat/fsm/structs"
)

// BenchmarkRaftApplyBaseline is the floor the submit path sits on: one
// small entry through hashicorp/raft + raft-boltdb (fsync) on this machine,
// with 1 and 16 concurrent writers. Compare BenchmarkSubmit in command/agent
// against it in the same run (ratios: these machines are noisy).
func BenchmarkRaftApplyBaseline(b *testing.B) {
	for _, writers := range []int{1, 16} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			s, err := New(Config{DataDir: b.TempDir(), RaftAddr: "127.0.0.1:0", Bootstrap: true, Dev: true,
				Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Shutdown()
			waitLeader(b, s)
			const n = 1000
			lat := make([]time.Duration, n)
			next := make(chan int)
			var wg sync.WaitGroup
			b.ResetTimer()
			start := time.Now()
			for w := 0; w < writers; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range next {
						t0 := time.Now()
						if _, _, err := s.apply(structs.EvalUpdateRequestType, &structs.EvalUpdateRequest{}); err != nil {
							b.Error(err)
							return
						}
						lat[i] = time.Since(t0)
					}
				}()
			}
			for i := 0; i < n; i++ {
				next <- i
			}
			close(next)
			wg.Wait()
			b.ReportMetric(float64(n)/time.Since(start).Seconds(), "writes/s")
			slices.Sort(lat)
			b.ReportMetric(float64(lat[n/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(lat[n*95/100].Microseconds())/1000, "p95-ms")
			b.ReportMetric(float64(lat[n*99/100].Microseconds())/1000, "p99-ms")
		})
	}
}

func waitLeader(b *testing.B, s *Server) {
	deadline := time.Now().Add(20 * time.Second)
	for !s.IsLeader() {
		if time.Now().After(deadline) {
			b.Fatal("no leader")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
