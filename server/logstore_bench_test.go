package server

import (
	"fmt"
	"io"
	"testing"

	"github.com/ciplat/ciplat/api"
)

// BenchmarkLogStore_FollowManyJobs is one wake-up of a follower of a
// 5,000-job pipeline: one job gets a line, the follower copies what is new.
// "changed" reads only the jobs its subscription marked (what
// httpapi's streamLogsFiltered does); "every-job" looks at every job's log on each
// wake-up, as the follow did before subscriptions.
func BenchmarkLogStore_FollowManyJobs(b *testing.B) {
	const jobs = 5000
	for _, mode := range []string{"changed", "every-job"} {
		b.Run(fmt.Sprintf("jobs=%d/%s", jobs, mode), func(b *testing.B) {
			l, err := NewLogStore(b.TempDir(), LogStoreConfig{})
			if err != nil {
				b.Fatal(err)
			}
			ids := make([]string, jobs)
			for i := range ids {
				ids[i] = fmt.Sprintf("job-%d", i)
			}
			sub, err := l.Subscribe(ids)
			if err != nil {
				b.Fatal(err)
			}
			defer sub.Close()
			last := make([]uint64, jobs)
			buf := make([]byte, logCopyBuffer)
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				id := ids[i%jobs]
				if _, err := l.Append(id, []*api.LogEntry{{JobID: id, Step: "s", Line: "building..."}}); err != nil {
					b.Fatal(err)
				}
				<-sub.C()
				dirty := sub.Take()
				if mode == "every-job" {
					dirty = dirty[:0]
					for j := range ids {
						dirty = append(dirty, j)
					}
				}
				for _, j := range dirty {
					if last[j], err = l.CopyAfter(io.Discard, buf, ids[j], last[j]); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}
