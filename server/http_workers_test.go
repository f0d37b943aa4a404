package server

import (
	"bufio"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/ciplat/ciplat/api"
)

func TestServer_Workers(t *testing.T) {
	ts := newTestServer(t, "")
	registerNode(ts, "n1")
	// The retry's backoff outlasts the test: the stopped job must still be
	// PENDING when it is read (a short one let a loaded host place it again).
	_, code := submit(ts, "name: w\njobs:\n  a: { retry: { attempts: 1, backoff: 1h }, steps: [ { name: s, run: 'sleep 100' } ] }\n", nil)
	if code/100 != 2 {
		t.Fatalf("submit: HTTP %d", code)
	}
	a := pick(nodeAllocs(ts, "n1", allocFor("a")), "a")

	// A placed worker is listed as creating before the client reports.
	var list []*api.Worker
	if resp := ts.do("GET", "/v1/workers", nil, nil, &list); resp.StatusCode != 200 || len(list) != 1 ||
		list[0].ID != a.ID || list[0].State != api.WorkerCreating || list[0].NodeID != "n1" || list[0].NodeName != "node-n1" || list[0].JobName != "a" {
		t.Fatalf("list = %+v (HTTP %d), want one creating worker", list, resp.StatusCode)
	}
	report(ts, &api.AllocUpdate{AllocID: a.ID, ClientStatus: api.AllocClientRunning, JobState: api.StateRunning,
		Driver: "exec", WorkerID: "h-1", WorkerState: api.WorkerRunning})
	var w api.Worker
	if resp := ts.do("GET", "/v1/workers/"+a.ID[:6], nil, nil, &w); resp.StatusCode != 200 ||
		w.ID != a.ID || w.Driver != "exec" || w.HandleID != "h-1" || w.State != api.WorkerRunning || !w.Live || w.Age == "" {
		t.Fatalf("get by prefix = %+v (HTTP %d)", w, resp.StatusCode)
	}
	// Logs of the attempt: only attempt 1's lines.
	var es []*api.LogEntry
	for i, att := range []int{1, 2} {
		es = append(es, &api.LogEntry{JobID: a.JobID, JobName: "a", Step: "s", Attempt: att, Stream: "stdout", Time: time.Now(), Line: []string{"one", "two"}[i]})
	}
	b, _ := json.Marshal(es)
	if resp := ts.do("POST", "/v1/client/logs", b, nil, nil); resp.StatusCode != 200 {
		t.Fatalf("push logs: HTTP %d", resp.StatusCode)
	}
	resp := ts.do("GET", "/v1/workers/"+a.ID+"/logs", nil, nil, nil)
	var lines []string
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		var e api.LogEntry
		if json.Unmarshal(sc.Bytes(), &e) == nil {
			lines = append(lines, e.Line)
		}
	}
	if resp.StatusCode != 200 || strings.Join(lines, ",") != "one" {
		t.Fatalf("worker logs = %v (HTTP %d), want [one]", lines, resp.StatusCode)
	}
	// ?tail counts the worker's attempt's lines only: the last is "one".
	resp = ts.do("GET", "/v1/workers/"+a.ID+"/logs?tail=1", nil, nil, nil)
	if b, _ := io.ReadAll(resp.Body); resp.StatusCode != 200 || !strings.Contains(string(b), `"line":"one"`) {
		t.Fatalf("worker logs ?tail=1 = %s (HTTP %d), want the line one", b, resp.StatusCode)
	}
	if resp := ts.do("GET", "/v1/workers/"+a.ID+"/logs?step=nope", nil, nil, nil); resp.StatusCode != 404 {
		t.Fatalf("logs of an unknown step: HTTP %d, want 404", resp.StatusCode)
	}

	// Stop: desired stop, the job is retried with the reason.
	if resp := ts.do("DELETE", "/v1/workers/"+a.ID, nil, nil, &w); resp.StatusCode != 200 || !w.StopRequested || w.DesiredStatus != api.AllocDesiredStop {
		t.Fatalf("delete = %+v (HTTP %d)", w, resp.StatusCode)
	}
	var j api.Job
	ts.do("GET", "/v1/jobs/"+a.JobID, nil, nil, &j)
	if j.State != api.StatePending || !strings.Contains(j.Reason, "worker terminated by operator") {
		t.Fatalf("job after stop = %s %q, want PENDING for a retry with the reason", j.State, j.Reason)
	}
	// Idempotent.
	if resp := ts.do("DELETE", "/v1/workers/"+a.ID, nil, nil, &w); resp.StatusCode != 200 || w.ID != a.ID {
		t.Fatalf("second delete: HTTP %d", resp.StatusCode)
	}
	nodeAllocs(ts, "n1", func(as []*api.Allocation) bool {
		for _, x := range as {
			if x.ID == a.ID && x.DesiredStatus == api.AllocDesiredStop {
				return true
			}
		}
		return false
	})
	report(ts, &api.AllocUpdate{AllocID: a.ID, ClientStatus: api.AllocClientComplete, Driver: "exec", WorkerID: "h-1", WorkerState: api.WorkerTerminated})
	if resp := ts.do("DELETE", "/v1/workers/"+a.ID, nil, nil, &w); resp.StatusCode != 200 || w.State != api.WorkerTerminated || w.Live {
		t.Fatalf("delete of an ended worker = %+v (HTTP %d)", w, resp.StatusCode)
	}
	// Ended workers show only with ?all=true.
	waitFor(t, "ended worker leaves the live list", func() bool {
		var l []*api.Worker
		ts.do("GET", "/v1/workers", nil, nil, &l)
		for _, x := range l {
			if x.ID == a.ID {
				return false
			}
		}
		return true
	})
	ts.do("GET", "/v1/workers?all=true", nil, nil, &list)
	found := false
	for _, x := range list {
		found = found || (x.ID == a.ID && x.State == api.WorkerTerminated)
	}
	if !found {
		t.Fatalf("?all=true = %+v, want the terminated worker", list)
	}
	// 404s and bad input.
	for _, c := range []struct{ method, path string }{
		{"GET", "/v1/workers/zzz-nope"}, {"DELETE", "/v1/workers/zzz-nope"}, {"GET", "/v1/workers/zzz-nope/logs"},
	} {
		if resp := ts.do(c.method, c.path, nil, nil, nil); resp.StatusCode != 404 {
			t.Fatalf("%s %s: HTTP %d, want 404", c.method, c.path, resp.StatusCode)
		}
	}
	if resp := ts.do("GET", "/v1/workers?all=maybe", nil, nil, nil); resp.StatusCode != 400 {
		t.Fatalf("?all=maybe: HTTP %d, want 400", resp.StatusCode)
	}
}

// TestServer_WorkersPagination: ?per_page pages through the list in its
// order with X-Ciplat-Next-Token; the pages add up to the whole list.
func TestServer_WorkersPagination(t *testing.T) {
	ts := newTestServer(t, "")
	registerNode(ts, "n1")
	_, code := submit(ts, "name: w\njobs:\n"+
		"  a: { steps: [ { name: s, run: 'sleep 100' } ] }\n  b: { steps: [ { name: s, run: 'sleep 100' } ] }\n"+
		"  c: { steps: [ { name: s, run: 'sleep 100' } ] }\n  d: { steps: [ { name: s, run: 'sleep 100' } ] }\n"+
		"  e: { steps: [ { name: s, run: 'sleep 100' } ] }\n", nil)
	if code/100 != 2 {
		t.Fatalf("submit: HTTP %d", code)
	}
	nodeAllocs(ts, "n1", func(as []*api.Allocation) bool { return len(as) == 5 })
	var whole []*api.Worker
	if resp := ts.do("GET", "/v1/workers", nil, nil, &whole); resp.StatusCode != 200 || len(whole) != 5 || resp.Header.Get("X-Ciplat-Next-Token") != "" {
		t.Fatalf("unpaged list: %d workers, HTTP %d, next token %q", len(whole), resp.StatusCode, resp.Header.Get("X-Ciplat-Next-Token"))
	}
	var paged []string
	token, pages := "", 0
	for {
		var page []*api.Worker
		path := "/v1/workers?per_page=2"
		if token != "" {
			path += "&next_token=" + token
		}
		resp := ts.do("GET", path, nil, nil, &page)
		if resp.StatusCode != 200 || len(page) == 0 || len(page) > 2 {
			t.Fatalf("%s: %d workers, HTTP %d", path, len(page), resp.StatusCode)
		}
		pages++
		for _, w := range page {
			paged = append(paged, w.ID)
		}
		if token = resp.Header.Get("X-Ciplat-Next-Token"); token == "" {
			break
		}
		if pages > 5 {
			t.Fatalf("more than 3 pages of 2 for 5 workers; token %q", token)
		}
	}
	var want []string
	for _, w := range whole {
		want = append(want, w.ID)
	}
	if pages != 3 || strings.Join(paged, ",") != strings.Join(want, ",") {
		t.Errorf("%d pages: %v, want 3 pages adding up to %v", pages, paged, want)
	}
	for _, bad := range []string{"per_page=0", "per_page=1001", "per_page=x", "next_token=garbage", "next_token=12."} {
		if resp := ts.do("GET", "/v1/workers?"+bad, nil, nil, nil); resp.StatusCode != 400 {
			t.Errorf("?%s: HTTP %d, want 400", bad, resp.StatusCode)
		}
	}
}
