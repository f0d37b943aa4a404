package agent_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// BenchmarkRejectedSpec runs the real binary (`ciplat agent -dev -driver
// mock`) and measures what refused specs cost it: resident memory and
// data-dir size after the refusals, against the same agent idle for the
// same time just before (the baseline of the run). The requests are the
// ones of issue 12: 20,000 one-step jobs in 249 KB (400: more than
// -limit-jobs-per-pipeline), and a 16 MiB body (413: more than
// -limit-spec-bytes): one of each, then twenty more of each.
func BenchmarkRejectedSpec(b *testing.B) {
	dataDir := b.TempDir()
	cmd := exec.Command(binPath, "agent", "-dev", "-data-dir", dataDir, "-http-addr", "127.0.0.1:0", "-driver", "mock", "-log-level", "error")
	// gctrace prints the live heap after each GC: what the agent holds, as
	// opposed to its RSS, which keeps freed pages for reuse.
	cmd.Env = append(os.Environ(), "GODEBUG=gctrace=1")
	stdout, _ := cmd.StdoutPipe()
	stderr, _ := cmd.StderrPipe()
	gcs := make(chan float64, 1000)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := gcLive.FindStringSubmatch(sc.Text()); m != nil {
				v, _ := strconv.ParseFloat(m[1], 64)
				select {
				case gcs <- v:
				default:
				}
			}
		}
	}()
	// liveAfterNextGC drains the GCs seen so far and returns the live heap
	// (MB) after the next one; an idle agent runs one at least every two
	// minutes (Go's forced GC).
	liveAfterNextGC := func() float64 {
		for len(gcs) > 0 {
			<-gcs
		}
		select {
		case v := <-gcs:
			return v
		case <-time.After(3 * time.Minute):
			b.Fatal("no GC in 3 minutes")
			return 0
		}
	}
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

	var many strings.Builder
	many.WriteString("name: many\njobs:\n")
	for i := 0; i < 20000; i++ {
		fmt.Fprintf(&many, "  j%d: {steps: ['true']}\n", i)
	}
	huge := "name: huge\njobs: {j: {steps: ['true']}}\n#" + strings.Repeat("x", 16<<20) + "\n"
	post := func(body string, want int) {
		resp, err := http.Post(addr+"/v1/pipelines", "application/yaml", bytes.NewReader([]byte(body)))
		if err != nil {
			// The server may close the connection once it has refused
			// the rest of a body past the limit.
			if want == http.StatusRequestEntityTooLarge {
				return
			}
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != want {
			b.Fatalf("HTTP %d, want %d", resp.StatusCode, want)
		}
	}

	const settle = 10 * time.Second
	time.Sleep(settle) // the agent's start-up work (leader, node registration) ends
	rss0, dir0 := rssKiB(b, cmd.Process.Pid), dirBytes(b, dataDir)
	time.Sleep(settle) // idle baseline: the same wait, no requests
	rss1, dir1 := rssKiB(b, cmd.Process.Pid), dirBytes(b, dataDir)
	live1 := liveAfterNextGC()
	start := time.Now()
	post(many.String(), http.StatusBadRequest)
	post(huge, http.StatusRequestEntityTooLarge)
	refuse := time.Since(start) / 2
	live2 := liveAfterNextGC()
	time.Sleep(settle)
	rss2, dir2 := rssKiB(b, cmd.Process.Pid), dirBytes(b, dataDir)
	// Twenty more of each: the memory of a refusal is garbage the runtime
	// keeps for reuse (below its heap goal), so it must not grow again.
	for i := 0; i < 20; i++ {
		post(many.String(), http.StatusBadRequest)
		post(huge, http.StatusRequestEntityTooLarge)
	}
	time.Sleep(settle)
	rss3, dir3 := rssKiB(b, cmd.Process.Pid), dirBytes(b, dataDir)

	b.ReportMetric(float64(rss1)/1024, "idle-rss-MiB")
	b.ReportMetric(float64(rss1-rss0)/1024, "idle-rss-growth-MiB")
	b.ReportMetric(float64(dir1-dir0)/1024, "idle-datadir-growth-KiB")
	b.ReportMetric(float64(rss2-rss1)/1024, "refused1-rss-growth-MiB")
	b.ReportMetric(float64(dir2-dir1)/1024, "refused1-datadir-growth-KiB")
	b.ReportMetric(float64(rss3-rss2)/1024, "refused21-rss-growth-MiB")
	b.ReportMetric(float64(dir3-dir2)/1024, "refused21-datadir-growth-KiB")
	b.ReportMetric(float64(refuse.Microseconds())/1000, "ms/refusal")
	b.ReportMetric(live1, "idle-live-heap-MB")
	b.ReportMetric(live2-live1, "refused1-live-heap-growth-MB")
}

// gcLive finds the live heap in a gctrace line: "gc 7 @2.1s 0%: …, 12->13->6 MB, …".
var gcLive = regexp.MustCompile(`->(\d+(?:\.\d+)?) MB, `)

// dirBytes is the total size of the regular files under dir.
func dirBytes(b *testing.B, dir string) int64 {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // a file removed while walking (a log rotated)
		}
		if d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return n
}
