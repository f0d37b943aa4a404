package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ciplat/ciplat/fsm/state"
)

// procStatusKiB reads a field (VmRSS, VmHWM) of /proc/self/status in KiB.
func procStatusKiB(tb testing.TB, field string) int {
	tb.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		tb.Skipf("no /proc/self/status: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			return n
		}
	}
	tb.Fatalf("no %s in /proc/self/status", field)
	return 0
}

// resetPeakRSS makes VmHWM start again from the current RSS (Linux: "5"
// to /proc/self/clear_refs).
func resetPeakRSS(tb testing.TB) {
	tb.Helper()
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		tb.Skipf("cannot reset the peak RSS: %v", err)
	}
}

// bigSnapshot writes a snapshot file of at least size bytes to path: the
// state of tmpl (a snapshot file holding one job) with its job row copied
// under new IDs, each padded to ≈ 4 KiB; broken leaves the last row's ID
// empty (a snapshot that streams and reindexes whole and is refused by
// state.Verify at its last row).
func bigSnapshot(tb testing.TB, tmpl []byte, path string, size int64, broken bool) int {
	tb.Helper()
	meta, stream, _ := bytes.Cut(tmpl, []byte("\n"))
	var jobRow map[string]any
	var header, others []byte
	for i, line := range bytes.Split(bytes.TrimSpace(stream), []byte("\n")) {
		var rec struct {
			Table string         `json:"table"`
			Row   map[string]any `json:"row"`
			End   bool           `json:"end"`
		}
		if err := json.Unmarshal(line, &rec); err != nil {
			tb.Fatal(err)
		}
		switch {
		case i == 0:
			header = append(line, '\n')
		case rec.End, rec.Table == state.TableIndex:
		case rec.Table == state.TableJobs && jobRow == nil:
			jobRow = rec.Row
		case rec.Table == state.TableNodes || rec.Table == state.TableSchedulerConfig:
			others = append(append(others, line...), '\n')
		}
	}
	if jobRow == nil {
		tb.Fatal("template snapshot has no job")
	}
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	w := bufio.NewWriter(f)
	_, _ = w.Write(append(meta, '\n'))
	_, _ = w.Write(header)
	_, _ = w.Write(others)
	rows := bytes.Count(others, []byte("\n"))
	jobRow["reason"] = strings.Repeat("x", 4096) // padding, ≈ 4 KiB a row
	var written int64
	for n := 0; written < size; n++ {
		jobRow["id"] = fmt.Sprintf("00000000-0000-4000-8000-%012x", n)
		if broken && written+int64(4200) >= size {
			jobRow["id"] = ""
		}
		line, _ := json.Marshal(map[string]any{"table": state.TableJobs, "row": jobRow})
		_, _ = w.Write(append(line, '\n'))
		written += int64(len(line) + 1)
		rows++
	}
	fmt.Fprintf(w, "{\"end\":true,\"rows\":%d}\n", rows)
	if err := w.Flush(); err != nil {
		tb.Fatal(err)
	}
	return rows
}

// BenchmarkSnapshotRestoreRSS measures the agent's memory during a restore
// of a ≈200 MiB snapshot (CIPLAT_BENCH_SNAPSHOT_MIB to change) on a
// one-server cluster, in this process: idle RSS, the peak while a
// snapshot refused by Verify at its last row streams through the whole
// upload path (temp file, reindex, verify: everything but building the
// state), the peak during a real restore, and the RSS after it (the
// restored state, live). Run with -benchtime=1x.
func BenchmarkSnapshotRestoreRSS(b *testing.B) {
	mib := 200
	if v, err := strconv.Atoi(os.Getenv("CIPLAT_BENCH_SNAPSHOT_MIB")); err == nil && v > 0 {
		mib = v
	}
	dir := b.TempDir()
	s, err := New(Config{DataDir: filepath.Join(dir, "server"), RaftAddr: "127.0.0.1:0", Bootstrap: true, Dev: true,
		Logger: slog.New(slog.DiscardHandler), SnapshotMaxBytes: 1 << 30})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = s.Shutdown() }()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := s.WaitForLeader(ctx); err != nil {
		b.Fatal(err)
	}
	web := httptest.NewServer(s.HTTPHandler())
	defer web.Close()
	put := func(path string) (int, string) {
		f, err := os.Open(path)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		fi, _ := f.Stat()
		req, _ := http.NewRequest("PUT", web.URL+"/v1/operator/snapshot", f)
		req.ContentLength = fi.Size()
		req.Header.Set("Content-Type", "application/octet-stream")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	resp, err := http.Post(web.URL+"/v1/jobs", "application/yaml", strings.NewReader("name: t\nsteps: [ 'true' ]\n"))
	if err != nil || resp.StatusCode != 201 {
		b.Fatalf("submit: %v %v", resp, err)
	}
	resp.Body.Close()
	resp, err = http.Get(web.URL + "/v1/operator/snapshot")
	if err != nil {
		b.Fatal(err)
	}
	tmpl, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	good := filepath.Join(dir, "good.snap")
	bigSnapshot(b, tmpl, good, int64(mib)<<20, false)
	bad := filepath.Join(dir, "bad.snap")
	bigSnapshot(b, tmpl, bad, int64(mib)<<20, true)
	fi, err := os.Stat(good)
	if err != nil {
		b.Fatal(err)
	}
	size := fi.Size()

	for b.Loop() {
		debug.FreeOSMemory()
		idle := procStatusKiB(b, "VmRSS")
		resetPeakRSS(b)
		if code, body := put(bad); code != 400 || !strings.Contains(body, "missing") {
			b.Fatalf("the refused snapshot: HTTP %d %s", code, body)
		}
		uploadPeak := procStatusKiB(b, "VmHWM")
		debug.FreeOSMemory()
		idle2 := procStatusKiB(b, "VmRSS")
		resetPeakRSS(b)
		if code, body := put(good); code != 200 {
			b.Fatalf("restore: HTTP %d %s", code, body)
		}
		peak := procStatusKiB(b, "VmHWM")
		debug.FreeOSMemory()
		after := procStatusKiB(b, "VmRSS")
		b.ReportMetric(float64(size)/(1<<20), "snapshot-MiB")
		b.ReportMetric(float64(idle)/1024, "idle-RSS-MiB")
		b.ReportMetric(float64(uploadPeak-idle)/1024, "upload-path-peak-above-idle-MiB")
		b.ReportMetric(float64(peak-idle2)/1024, "restore-peak-above-idle-MiB")
		b.ReportMetric(float64(after-idle2)/1024, "restored-state-above-idle-MiB")
	}
}
