package server

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/ciplat/ciplat/api"
)

// logEntry is one test entry of job j1.
func logEntry(line string) *api.LogEntry {
	return &api.LogEntry{JobID: "j1", JobName: "build", Step: "s", Attempt: 1, Stream: "stdout",
		Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Line: line}
}

// encodedSize is the bytes entry e takes in a log file as entry number seq.
func encodedSize(t *testing.T, e *api.LogEntry, seq uint64) int64 {
	t.Helper()
	c := *e
	c.Seq = seq
	b, err := json.Marshal(&c)
	if err != nil {
		t.Fatal(err)
	}
	return int64(len(b)) + 1
}

// fileLines reads a job's log file back.
func fileLines(t *testing.T, dir, jobID string) []*api.LogEntry {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, jobID+".ndjson"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []*api.LogEntry
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var e api.LogEntry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatal(err)
		}
		out = append(out, &e)
	}
	return out
}

func TestLogStore_AppendCap(t *testing.T) {
	lines := []string{"one", "two", "three"}
	var total int64
	for i, l := range lines {
		total += encodedSize(t, logEntry(l), uint64(i+1))
	}
	for _, tc := range []struct {
		name    string
		max     int64
		want    []string
		dropped int
	}{
		{"at the limit", total, []string{"one", "two", "three"}, 0},
		{"one byte short", total - 1, []string{"one", "two", fmt.Sprintf("[ciplat: log truncated at %d bytes]", total-1)}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			l, err := NewLogStore(dir, LogStoreConfig{MaxBytesPerJob: tc.max})
			if err != nil {
				t.Fatal(err)
			}
			var es []*api.LogEntry
			for _, s := range lines {
				es = append(es, logEntry(s))
			}
			dropped, err := l.Append("j1", es)
			if err != nil || dropped != tc.dropped {
				t.Fatalf("append: dropped %d, %v; want %d", dropped, err, tc.dropped)
			}
			var got []string
			for _, e := range fileLines(t, dir, "j1") {
				got = append(got, e.Line)
			}
			if strings.Join(got, "|") != strings.Join(tc.want, "|") {
				t.Fatalf("file holds %q, want %q", got, tc.want)
			}
			// One more line: past the cap now in both cases.
			dropped, err = l.Append("j1", []*api.LogEntry{logEntry("four"), logEntry("five")})
			if err != nil {
				t.Fatal(err)
			}
			es = fileLines(t, dir, "j1")
			last := es[len(es)-1]
			if dropped != 2 || !strings.HasPrefix(last.Line, "[ciplat: log truncated at ") || last.Stream != "stderr" || last.Seq != uint64(len(es)) {
				t.Fatalf("after the cap: dropped %d, last entry %+v; want 2 dropped and the marker last", dropped, last)
			}
			if n := strings.Count(fmt.Sprint(linesOf(es)), "[ciplat: log truncated"); n != 1 {
				t.Fatalf("%d marker lines, want 1", n)
			}
			if got := l.DroppedLines(); got != uint64(tc.dropped+2) {
				t.Fatalf("DroppedLines = %d, want %d", got, tc.dropped+2)
			}
			// A restarted store knows the log is full.
			l2, err := NewLogStore(dir, LogStoreConfig{MaxBytesPerJob: tc.max})
			if err != nil {
				t.Fatal(err)
			}
			if dropped, err := l2.Append("j1", []*api.LogEntry{logEntry("six")}); err != nil || dropped != 1 {
				t.Fatalf("after a restart: dropped %d, %v; want 1", dropped, err)
			}
			if n := len(fileLines(t, dir, "j1")); n != len(es) {
				t.Fatalf("after a restart the file has %d entries, want %d", n, len(es))
			}
		})
	}
}

func linesOf(es []*api.LogEntry) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.Line)
	}
	return out
}

// writeLog writes about size bytes of 1 KiB entries as job j1's log file
// in dir (as Append would, faster than encoding each) and returns how many.
func writeLog(t testing.TB, dir string, size int) int {
	t.Helper()
	b, err := json.Marshal(logEntry(strings.Repeat("x", 1000)))
	if err != nil {
		t.Fatal(err)
	}
	head := string(b[:len(b)-1]) + `,"seq":`
	f, err := os.Create(filepath.Join(dir, "j1.ndjson"))
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriter(f)
	n := 0
	for written := 0; written < size; n++ {
		k, _ := fmt.Fprintf(w, "%s%d}\n", head, n+1)
		written += k
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return n
}

// allocatedBy reports the bytes the process allocated while fn ran.
func allocatedBy(fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

func TestLogStore_ReadLargeLogBoundedMemory(t *testing.T) {
	const size = 64 << 20
	dir := t.TempDir()
	n := writeLog(t, dir, size)
	l, err := NewLogStore(dir, LogStoreConfig{MaxBytesPerJob: 2 * size})
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, logCopyBuffer)
	for _, after := range []uint64{0, uint64(n) - 10, uint64(n/2) + 7} {
		var cw countingWriter
		var seq uint64
		alloc := allocatedBy(func() {
			if seq, err = l.CopyAfter(&cw, buf, "j1", after); err != nil {
				t.Fatal(err)
			}
		})
		if seq != uint64(n) || cw.lines != n-int(after) {
			t.Fatalf("after %d: copied %d lines up to seq %d, want %d up to %d", after, cw.lines, seq, n-int(after), n)
		}
		if alloc > 1<<20 {
			t.Fatalf("after %d: reading a %d MiB log allocated %d KiB, want under 1 MiB", after, size>>20, alloc>>10)
		}
		t.Logf("after %d: %d lines, %d bytes allocated", after, cw.lines, alloc)
	}
	// A tail of one step reads backwards from the end, a chunk at a time.
	var start uint64
	alloc := allocatedBy(func() {
		start, err = l.TailAfter("j1", 10, func(e *api.LogEntry) bool { return e.Step == "s" })
	})
	if err != nil || start != uint64(n)-10 {
		t.Fatalf("tail 10: starts after %d (%v), want %d", start, err, n-10)
	}
	if alloc > 1<<20 {
		t.Fatalf("a tail of a %d MiB log allocated %d KiB, want under 1 MiB", size>>20, alloc>>10)
	}
	t.Logf("tail 10 of one step: %d bytes allocated", alloc)
	// A filtered read (one step) decodes entry by entry from the same
	// position.
	var lines []uint64
	if _, err := l.ScanAfter("j1", uint64(n)-3, func(e *api.LogEntry, raw []byte) error {
		lines = append(lines, e.Seq)
		return nil
	}); err != nil || fmt.Sprint(lines) != fmt.Sprint([]uint64{uint64(n) - 2, uint64(n) - 1, uint64(n)}) {
		t.Fatalf("scan of the last 3: %v, %v", lines, err)
	}
	// The store keeps the job's append position, not its lines: the
	// sparse index has one offset per logIndexEvery entries.
	if j, err := l.lockJob("j1"); err == nil {
		if len(j.index) > n/logIndexEvery+1 {
			t.Errorf("index of %d offsets for %d entries", len(j.index), n)
		}
		j.mu.Unlock()
	}
}

// countingWriter counts the bytes and lines written to it.
type countingWriter struct {
	bytes int
	lines int
}

func (c *countingWriter) Write(p []byte) (int, error) {
	c.bytes += len(p)
	c.lines += bytes.Count(p, []byte("\n"))
	return len(p), nil
}

var _ io.Writer = (*countingWriter)(nil)

func TestLogStore_SubscriptionMarksOnlyChangedJobs(t *testing.T) {
	l, err := NewLogStore(t.TempDir(), LogStoreConfig{})
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, 5000)
	for i := range ids {
		ids[i] = fmt.Sprintf("job-%d", i)
	}
	sub, err := l.Subscribe(ids)
	if err != nil {
		t.Fatal(err)
	}
	if l.Followers() != 1 {
		t.Fatalf("followers = %d, want 1", l.Followers())
	}
	for _, i := range []int{1234, 7, 1234} {
		if _, err := l.Append(ids[i], []*api.LogEntry{{JobID: ids[i], Line: "x"}}); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-sub.C():
	case <-time.After(10 * time.Second):
		t.Fatal("no wake-up")
	}
	if got := sub.Take(); fmt.Sprint(got) != "[1234 7]" {
		t.Fatalf("Take = %v, want [1234 7]", got)
	}
	if got := sub.Take(); len(got) != 0 {
		t.Fatalf("second Take = %v, want nothing", got)
	}
	sub.Close()
	sub.Close()
	if l.Followers() != 0 {
		t.Fatalf("followers = %d after Close, want 0", l.Followers())
	}
	l.mu.Lock()
	n := len(l.jobs)
	l.mu.Unlock()
	if n != 2 {
		t.Fatalf("the store remembers %d jobs after the follow, want the 2 with logs", n)
	}
}

func TestLogStore_TornLastLine(t *testing.T) {
	dir := t.TempDir()
	l, _ := NewLogStore(dir, LogStoreConfig{})
	if _, err := l.Append("j1", []*api.LogEntry{logEntry("one")}); err != nil {
		t.Fatal(err)
	}
	f, _ := os.OpenFile(filepath.Join(dir, "j1.ndjson"), os.O_WRONLY|os.O_APPEND, 0)
	_, _ = f.WriteString(`{"job_id":"j1","li`)
	f.Close()
	l2, _ := NewLogStore(dir, LogStoreConfig{})
	if _, err := l2.Append("j1", []*api.LogEntry{logEntry("two")}); err != nil {
		t.Fatal(err)
	}
	es := fileLines(t, dir, "j1")
	if strings.Join(linesOf(es), ",") != "one,two" || es[1].Seq != 2 {
		t.Fatalf("after a torn write: %q", linesOf(es))
	}
}

func TestLogStore_TailAfter(t *testing.T) {
	l, err := NewLogStore(t.TempDir(), LogStoreConfig{})
	if err != nil {
		t.Fatal(err)
	}
	// Steps a and b alternate; every third line is longer than a chunk.
	var es []*api.LogEntry
	for i := range 30 {
		e := logEntry(fmt.Sprintf("l%d", i+1))
		e.Step = []string{"a", "b"}[i%2]
		if i%3 == 0 {
			e.Line += strings.Repeat("-", logTailChunk+100)
		}
		es = append(es, e)
	}
	if _, err := l.Append("j1", es); err != nil {
		t.Fatal(err)
	}
	stepB := func(e *api.LogEntry) bool { return e.Step == "b" }
	for _, tc := range []struct {
		n     int
		match func(*api.LogEntry) bool
		want  uint64
	}{
		{5, nil, 25},
		{0, nil, 30},
		{100, nil, 0},
		{1, stepB, 29}, // l30 is b
		{3, stepB, 25}, // l26, l28, l30
		{15, stepB, 1}, // every b: l2 first
		{16, stepB, 0}, // fewer than asked
		{1, func(e *api.LogEntry) bool { return e.Seq == 1 }, 0},
	} {
		got, err := l.TailAfter("j1", tc.n, tc.match)
		if err != nil || got != tc.want {
			t.Errorf("TailAfter(%d, filtered %v) = %d, %v; want %d", tc.n, tc.match != nil, got, err, tc.want)
		}
	}
	if got, err := l.TailAfter("unknown", 3, stepB); err != nil || got != 0 {
		t.Fatalf("tail of a job without logs: %d, %v", got, err)
	}
}

// logCopyBuffer is the size of the buffer httpapi's log streams copy
// through (its logCopyBuffer).
const logCopyBuffer = 32 * 1024
