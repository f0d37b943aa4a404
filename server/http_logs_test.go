package server

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ciplat/ciplat/api"
)

// logsJob is a pipeline whose job stays PENDING while no node is registered.
const logsJob = "name: l\njobs:\n  a: { steps: [ { name: s, run: 'true' } ] }\n"

// pushLogs posts entries and returns the HTTP status and the answer.
func pushLogs(ts *testServer, es []*api.LogEntry) (int, map[string]any) {
	ts.t.Helper()
	b, _ := json.Marshal(es)
	var out map[string]any
	resp := ts.do("POST", "/v1/client/logs", b, nil, &out)
	return resp.StatusCode, out
}

func lines(jobID string, n, size int) []*api.LogEntry {
	es := make([]*api.LogEntry, n)
	for i := range es {
		es[i] = &api.LogEntry{JobID: jobID, Step: "s", Attempt: 1, Stream: "stdout", Time: time.Now(), Line: strings.Repeat("y", size)}
	}
	return es
}

func TestServer_ClientLogsRefusedForUnknownOrFinishedJob(t *testing.T) {
	ts := newTestServer(t, "")
	logDir := filepath.Join(ts.dir, "logs")

	code, out := pushLogs(ts, lines("no-such-job", 3, 10))
	if code != 404 || !strings.Contains(fmt.Sprint(out["error"]), "no-such-job") {
		t.Fatalf("unknown job: HTTP %d %v, want 404 naming the job", code, out)
	}
	if _, err := os.Stat(filepath.Join(logDir, "no-such-job.ndjson")); !os.IsNotExist(err) {
		t.Fatalf("a log file was written for an unknown job (%v)", err)
	}

	p, _ := submit(ts, logsJob, nil)
	jobID := p.JobIDs[0]
	// A batch naming a live job and an unknown one is refused whole.
	code, _ = pushLogs(ts, append(lines(jobID, 1, 10), lines("other-unknown", 1, 10)...))
	if code != 404 {
		t.Fatalf("mixed batch: HTTP %d, want 404", code)
	}
	if _, err := os.Stat(filepath.Join(logDir, jobID+".ndjson")); !os.IsNotExist(err) {
		t.Fatalf("a refused batch wrote the live job's log (%v)", err)
	}
	if code, out = pushLogs(ts, lines(jobID, 2, 10)); code != 200 || out["accepted"] != float64(2) {
		t.Fatalf("live job: HTTP %d %v, want 200 with 2 accepted", code, out)
	}
	info, err := os.Stat(filepath.Join(logDir, jobID+".ndjson"))
	if err != nil {
		t.Fatal(err)
	}

	if resp := ts.do("POST", "/v1/pipelines/"+p.ID+"/cancel", nil, nil, nil); resp.StatusCode/100 != 2 {
		t.Fatalf("cancel: HTTP %d", resp.StatusCode)
	}
	waitFor(t, "the job to end", func() bool {
		j, _ := ts.srv.State().JobByID(nil, jobID)
		return j != nil && j.State.Terminal()
	})
	code, out = pushLogs(ts, lines(jobID, 2, 10))
	if code != 409 || !strings.Contains(fmt.Sprint(out["error"]), "CANCELLED") {
		t.Fatalf("finished job: HTTP %d %v, want 409 saying it ended", code, out)
	}
	if after, _ := os.Stat(filepath.Join(logDir, jobID+".ndjson")); after.Size() != info.Size() {
		t.Fatalf("the finished job's log grew from %d to %d bytes", info.Size(), after.Size())
	}
}

func TestServer_ClientLogsCapped(t *testing.T) {
	ts := newLiveServer(t, func(c *Config) { c.Logs.MaxBytesPerJob = 4096 })
	p, _ := submit(ts, logsJob, nil)
	jobID := p.JobIDs[0]
	code, out := pushLogs(ts, lines(jobID, 10, 1000))
	if code != 200 || out["dropped"] == float64(0) || out["accepted"].(float64)+out["dropped"].(float64) != 10 {
		t.Fatalf("over the cap: HTTP %d %v, want 200 with some dropped", code, out)
	}
	resp := ts.do("GET", "/v1/jobs/"+jobID+"/logs", nil, nil, nil)
	var got []string
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		var e api.LogEntry
		if json.Unmarshal(sc.Bytes(), &e) == nil {
			got = append(got, e.Line)
		}
	}
	if len(got) == 0 || got[len(got)-1] != "[ciplat: log truncated at 4096 bytes]" {
		t.Fatalf("read back %d lines, last %q: want the marker last", len(got), got[len(got)-1:])
	}
	resp = ts.do("GET", "/v1/metrics", nil, nil, nil)
	b, _ := io.ReadAll(resp.Body)
	if want := fmt.Sprintf("\nciplat_logs_dropped_lines_total %v\n", out["dropped"]); !strings.Contains(string(b), want) {
		t.Fatalf("metrics lack %q", want)
	}
}

func TestServer_LogFollowerThatNeverReadsIsDropped(t *testing.T) {
	ts := newLiveServer(t, func(c *Config) {
		c.Logs.WriteTimeout = 300 * time.Millisecond
		c.Logs.MaxBytesPerJob = 1 << 30
	})
	p, _ := submit(ts, logsJob, nil)
	jobID := p.JobIDs[0]
	// A follower with a tiny receive window that never reads.
	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		if err != nil {
			return err
		}
		return serr
	}}
	conn, err := d.Dial("tcp", strings.TrimPrefix(ts.web.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := fmt.Fprintf(conn, "GET /v1/pipelines/%s/logs?follow=true HTTP/1.1\r\nHost: x\r\n\r\n", p.ID); err != nil {
		t.Fatal(err)
	}
	logs := ts.srv.Logs()
	waitFor(t, "the follow to start", func() bool { return logs.Followers() == 1 })
	// Lines keep coming; the follower reads none. Its stream must end by
	// the write deadline once the socket is full, not hold on forever.
	// Pushing stops at 64 MiB, 16 times the kernel's largest send buffer
	// (tcp_wmem max 4 MiB), so a slow machine writes no more than that.
	var pushed atomic.Int64
	batch := lines(jobID, 256, 1024)
	waitFor(t, "the stalled follower to be dropped", func() bool {
		if logs.Followers() == 0 {
			return true
		}
		if pushed.Load() < 64<<20 {
			if code, _ := pushLogs(ts, batch); code != 200 {
				t.Fatalf("push: HTTP %d", code)
			}
			pushed.Add(256 * 1024)
		}
		return false
	})
	t.Logf("follower dropped after %d MiB of log lines", pushed.Load()>>20)
}

// testClock is a settable clock for a server.
type testClock struct{ off atomic.Int64 }

func (c *testClock) now() time.Time          { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *testClock) advance(d time.Duration) { c.off.Add(int64(d)) }

func TestServer_LogRetention(t *testing.T) {
	clock := &testClock{}
	ts := newLiveServer(t, func(c *Config) { c.Now = clock.now; c.Logs.Retention = 48 * time.Hour })
	logDir := filepath.Join(ts.dir, "logs")
	p, _ := submit(ts, logsJob, nil)
	jobID := p.JobIDs[0]
	if code, _ := pushLogs(ts, lines(jobID, 2, 10)); code != 200 {
		t.Fatalf("push: HTTP %d", code)
	}
	// A log left by a job the servers no longer know.
	orphan := filepath.Join(logDir, "gone-job.ndjson")
	if err := os.WriteFile(orphan, []byte("{}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	exists := func(path string) bool { _, err := os.Stat(path); return err == nil }
	live := filepath.Join(logDir, jobID+".ndjson")

	clock.advance(47 * time.Hour)
	if n := ts.srv.sweepLogs(); n != 0 || !exists(orphan) || !exists(live) {
		t.Fatalf("before the retention: removed %d", n)
	}
	clock.advance(2 * time.Hour)
	if n := ts.srv.sweepLogs(); n != 1 || exists(orphan) || !exists(live) {
		t.Fatalf("past the retention: removed %d (orphan kept %v, live job's kept %v); want only the orphan's", n, exists(orphan), exists(live))
	}
	if resp := ts.do("POST", "/v1/pipelines/"+p.ID+"/cancel", nil, nil, nil); resp.StatusCode/100 != 2 {
		t.Fatalf("cancel: HTTP %d", resp.StatusCode)
	}
	waitFor(t, "the pipeline to end", func() bool {
		cur, _ := ts.srv.State().PipelineByID(nil, p.ID)
		return cur != nil && cur.State.Terminal()
	})
	if n := ts.srv.sweepLogs(); n != 1 || exists(live) {
		t.Fatalf("ended pipeline past the retention: removed %d, file kept %v", n, exists(live))
	}
	// Reads of a removed log answer nothing, and the job takes no more.
	resp := ts.do("GET", "/v1/jobs/"+jobID+"/logs", nil, nil, nil)
	if b := bufio.NewScanner(resp.Body); resp.StatusCode != 200 || b.Scan() {
		t.Fatalf("read after removal: HTTP %d, %q", resp.StatusCode, b.Text())
	}
}

func TestServer_JobLogsTail(t *testing.T) {
	ts := newTestServer(t, "")
	p, _ := submit(ts, logsJob, nil)
	jobID := p.JobIDs[0]
	es := lines(jobID, 5, 3)
	for i, e := range es {
		e.Line = fmt.Sprintf("l%d", i+1)
	}
	if code, _ := pushLogs(ts, es); code != 200 {
		t.Fatalf("push: HTTP %d", code)
	}
	read := func(query string) (int, []string) {
		resp := ts.do("GET", "/v1/jobs/"+jobID+"/logs?"+query, nil, nil, nil)
		var got []string
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			var e api.LogEntry
			if json.Unmarshal(sc.Bytes(), &e) == nil {
				got = append(got, e.Line)
			}
		}
		return resp.StatusCode, got
	}
	for query, want := range map[string]string{
		"tail=2":                "l4,l5",
		"tail=2&step=s":         "l4,l5",
		"tail=9":                "l1,l2,l3,l4,l5",
		"tail=0":                "",
		"tail=3&after=4":        "l5",
		"tail=2&step=s&after=1": "l4,l5",
	} {
		if code, got := read(query); code != 200 || strings.Join(got, ",") != want {
			t.Errorf("?%s: HTTP %d %q, want %q", query, code, got, want)
		}
	}
	for _, bad := range []string{"tail=-1", "tail=x", "tail=100001"} {
		if code, _ := read(bad); code != 400 {
			t.Errorf("?%s: HTTP %d, want 400", bad, code)
		}
	}
}
