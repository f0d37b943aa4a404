package server

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/ciplat/ciplat/fsm/state"
)

// saveSnapshot downloads a snapshot file from ts.
func saveSnapshot(t *testing.T, do func(method, path string, body []byte, hdr map[string]string, out any) *http.Response) []byte {
	t.Helper()
	resp := do("GET", "/v1/operator/snapshot", nil, nil, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("snapshot save: HTTP %d", resp.StatusCode)
	}
	b, _ := io.ReadAll(resp.Body)
	return b
}

// noUploadsLeft fails the test when a restore's temporary file is left in
// the data dir.
func noUploadsLeft(t *testing.T, dir string) {
	t.Helper()
	if left, _ := filepath.Glob(filepath.Join(dir, restoreUploadPattern)); len(left) > 0 {
		t.Fatalf("restore left temporary files: %v", left)
	}
}

// TestSnapshotRestore_ReplicatesBySnapshot: a restore sent to a follower is
// installed by the leader through raft's user restore and reaches every
// follower as an InstallSnapshot (each one's last snapshot is the restore's
// index, no Raft entry carried it); every table index is that index on
// every server, so blocking queries wake and indexes never go backwards.
func TestSnapshotRestore_ReplicatesBySnapshot(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	c.waitStable(3)
	f := c.followers()[0]
	var kept []string
	for i := 0; i < 3; i++ {
		id, _, err := f.submitTo(oneJob, fmt.Sprintf("k%d", i))
		if err != nil {
			t.Fatal(err)
		}
		kept = append(kept, id)
	}
	snap := saveSnapshot(t, f.do)
	later, _, err := f.submitTo(oneJob, "later")
	if err != nil {
		t.Fatal(err)
	}
	c.waitConverged(append(append([]string(nil), kept...), later))

	var out map[string]any
	resp := c.followers()[1].do("PUT", "/v1/operator/snapshot", snap, nil, &out)
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("restore: HTTP %d %s", resp.StatusCode, b)
	}
	idx, _ := strconv.ParseUint(resp.Header.Get("X-Ciplat-Index"), 10, 64)
	if idx == 0 || uint64(out["index"].(float64)) != idx {
		t.Fatalf("restore answered index %v, header %d", out["index"], idx)
	}
	c.waitConverged(kept)
	for _, cs := range c.running() {
		waitForTB(t, cs.name+" to install the restore as a snapshot", func() bool {
			return cs.srv.raft.Stats()["last_snapshot_index"] == strconv.FormatUint(idx, 10)
		})
		for _, table := range []string{state.TablePipelines, state.TableJobs, state.TableEvals} {
			// The leader's duties may write after the restore: never below.
			if got := cs.srv.State().Index(table); got < idx {
				t.Errorf("%s: index of %s = %d, below the restore's %d", cs.name, table, got, idx)
			}
		}
		noUploadsLeft(t, cs.dir)
	}
	// Writes go on above the restore's index.
	id, code, err := f.submitTo(oneJob, "new")
	if err != nil || code != 201 {
		t.Fatalf("submit after restore: %d %v", code, err)
	}
	c.waitConverged(append(kept, id))
	if got := c.leader().srv.State().Index(state.TablePipelines); got <= idx {
		t.Fatalf("pipelines index after a later write = %d, want above %d", got, idx)
	}
}

// TestSnapshotRestore_SizeLimit: a snapshot of exactly -snapshot-max-bytes
// is restored; one byte more is 413, whether the client declared its
// length or streamed it, and nothing changes.
func TestSnapshotRestore_SizeLimit(t *testing.T) {
	src := newSchedServer(t, "", nil)
	submitJob(src, "a", 50, 100, 64)
	snap := saveSnapshot(t, src.do)
	limit := int64(len(snap))
	ts := newSchedServer(t, "", func(c *Config) { c.SnapshotMaxBytes = limit })
	jobB := submitJob(ts, "b", 50, 100, 64)
	// The scheduler may still commit b's placement or evaluation: what a
	// restore would change is the pipelines table (its index, and b).
	before := ts.srv.State().Index(state.TablePipelines)
	// One byte more: trailing white space after the stream's footer.
	over := append(append([]byte(nil), snap...), '\n')
	for _, chunked := range []bool{false, true} {
		var body io.Reader = bytes.NewReader(over)
		if chunked {
			body = io.MultiReader(body) // hides the length: sent chunked
		}
		req, _ := http.NewRequest("PUT", ts.web.URL+"/v1/operator/snapshot", body)
		req.Header.Set("Content-Type", "application/octet-stream")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 413 || !strings.Contains(string(b), "-snapshot-max-bytes") {
			t.Fatalf("limit+1 (chunked %v): HTTP %d %s; want 413 naming the flag", chunked, resp.StatusCode, b)
		}
	}
	if after := ts.srv.State().Index(state.TablePipelines); after != before {
		t.Fatalf("a refused restore changed state: pipelines index %d → %d", before, after)
	}
	if j, _ := ts.srv.State().JobByID(nil, jobB); j == nil {
		t.Fatalf("a refused restore removed job %s", jobB)
	}
	noUploadsLeft(t, ts.dir)
	if resp := ts.do("PUT", "/v1/operator/snapshot", snap, nil, nil); resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("restore at the limit: HTTP %d %s", resp.StatusCode, b)
	}
	noUploadsLeft(t, ts.dir)
}

// TestSnapshotRestore_OneAtATime: while one upload is being received a
// second restore gets 409 at once; the first then completes.
func TestSnapshotRestore_OneAtATime(t *testing.T) {
	ts := newSchedServer(t, "", nil)
	submitJob(ts, "a", 50, 100, 64)
	snap := saveSnapshot(t, ts.do)
	pr, pw := io.Pipe()
	first := make(chan *http.Response, 1)
	go func() {
		req, _ := http.NewRequest("PUT", ts.web.URL+"/v1/operator/snapshot", pr)
		req.Header.Set("Content-Type", "application/octet-stream")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Error(err)
			first <- nil
			return
		}
		first <- resp
	}()
	half := len(snap) / 2
	if _, err := pw.Write(snap[:half]); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the first restore to be running", ts.srv.restoring.Load)
	var e map[string]string
	resp := ts.do("PUT", "/v1/operator/snapshot", snap, nil, &e)
	if resp.StatusCode != 409 || !strings.Contains(e["error"], "already running") {
		t.Fatalf("a second restore while one runs: HTTP %d %q; want 409", resp.StatusCode, e["error"])
	}
	if _, err := pw.Write(snap[half:]); err != nil {
		t.Fatal(err)
	}
	_ = pw.Close()
	r := <-first
	if r == nil {
		t.FailNow()
	}
	defer r.Body.Close()
	if r.StatusCode != 200 {
		b, _ := io.ReadAll(r.Body)
		t.Fatalf("the first restore: HTTP %d %s", r.StatusCode, b)
	}
	if resp := ts.do("PUT", "/v1/operator/snapshot", snap, nil, nil); resp.StatusCode != 200 {
		t.Fatalf("a restore after the first ended: HTTP %d", resp.StatusCode)
	}
}

// TestSnapshotRestore_Corrupt: a damaged snapshot is refused with 400
// saying why, before Raft sees it, and the state is untouched; a row that
// decodes but could not be inserted (its ID missing) is among them, since
// a Raft FSM that fails to restore a snapshot it was given cannot go on.
func TestSnapshotRestore_Corrupt(t *testing.T) {
	ts := newSchedServer(t, "", nil)
	id := submitJob(ts, "a", 50, 100, 64)
	// No node: the job ends blocked, and nothing writes after that.
	waitJob(ts, id, "blocked", func(j *jobJSON) bool { return strings.HasPrefix(j.Reason, "no node can run it") })
	snap := saveSnapshot(t, ts.do)
	_, stream, _ := bytes.Cut(snap, []byte("\n"))
	cases := map[string]struct {
		body []byte
		want string
	}{
		"cut short":     {snap[:len(snap)*2/3], "snapshot is damaged"},
		"no meta":       {stream, "not a ciplat snapshot"},
		"newer version": {append([]byte(`{"format":"ciplat-snapshot","version":9}`+"\n"), stream...), "snapshot version 9"},
		"footer count": {bytes.Replace(snap, []byte(`"end":true,"rows":`), []byte(`"end":true,"rows":1`), 1),
			"footer counts"},
		"unknown table": {bytes.Replace(snap, []byte(`{"table":"jobs"`), []byte(`{"table":"jobz"`), 1), "unknown table"},
		"row type":      {bytes.Replace(snap, []byte(`"id":"`+id+`"`), []byte(`"id":5,"x":"`), 1), "snapshot is damaged"},
		"missing id":    {bytes.Replace(snap, []byte(`"id":"`+id+`"`), []byte(`"id":""`), 1), "missing"},
	}
	before := ts.srv.State().LatestIndex()
	raftBefore := ts.srv.raft.LastIndex()
	for name, c := range cases {
		if bytes.Equal(c.body, snap) {
			t.Fatalf("%s: the corruption did not apply", name)
		}
		var e map[string]string
		resp := ts.do("PUT", "/v1/operator/snapshot", c.body, nil, &e)
		if resp.StatusCode != 400 || !strings.Contains(e["error"], c.want) {
			t.Errorf("%s: HTTP %d %q; want 400 mentioning %q", name, resp.StatusCode, e["error"], c.want)
		}
	}
	if after := ts.srv.State().LatestIndex(); after != before || ts.srv.raft.LastIndex() != raftBefore {
		t.Fatalf("refused restores changed state or the log: index %d → %d, raft %d → %d",
			before, after, raftBefore, ts.srv.raft.LastIndex())
	}
	if j, _ := ts.srv.State().JobByID(nil, id); j == nil {
		t.Fatalf("job %s is gone after refused restores", id)
	}
	noUploadsLeft(t, ts.dir)
}
