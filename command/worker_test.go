package command

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ciplat/ciplat/api"
)

const workerID = "3f2a9c1e-0000-4000-8000-000000000001"

// workerAgent answers the worker routes with one worker.
type workerAgent struct {
	srv   *httptest.Server
	mu    sync.Mutex
	w     api.Worker
	ended api.Worker // an older worker that ended
	got   []string
}

func newWorkerAgent(t *testing.T, created time.Time) *workerAgent {
	a := &workerAgent{w: api.Worker{ID: workerID, Driver: "docker", HandleID: "c0ffee", NodeID: nodeID, NodeName: "build1",
		JobID: "job-1", JobName: "test", PipelineID: "pipe-1", Attempt: 1, Image: "ciplat/busybox:test",
		State: api.WorkerRunning, Live: true, DesiredStatus: api.AllocDesiredRun, ClientStatus: api.AllocClientRunning, CreatedAt: created}}
	a.ended = api.Worker{ID: "0bad0000-0000-4000-8000-000000000002", Driver: "exec", NodeID: nodeID, NodeName: "build2",
		JobID: "job-0", JobName: "lint", PipelineID: "pipe-0", Attempt: 2, State: api.WorkerFailed, Reason: "oom",
		CreatedAt: created.Add(-time.Hour), EndedAt: created.Add(-time.Hour + time.Minute)}
	mux := http.NewServeMux()
	find := func(w http.ResponseWriter, r *http.Request) bool {
		a.mu.Lock()
		a.got = append(a.got, r.Method+" "+r.URL.RequestURI())
		a.mu.Unlock()
		if !strings.HasPrefix(workerID, r.PathValue("id")) {
			writeErr(w, http.StatusNotFound, "worker "+r.PathValue("id")+" not found")
			return false
		}
		return true
	}
	mux.HandleFunc("GET /v1/workers", func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		defer a.mu.Unlock()
		a.got = append(a.got, r.Method+" "+r.URL.RequestURI())
		// The worker, then one that ended (listed with ?all); with
		// ?per_page the server pages one worker at a time.
		var list []*api.Worker
		for _, x := range []*api.Worker{&a.w, &a.ended} {
			if x.Live || r.URL.Query().Get("all") == "true" {
				list = append(list, x)
			}
		}
		if r.URL.Query().Get("per_page") != "" && len(list) > 1 {
			if r.URL.Query().Get("next_token") == "second" {
				list = list[1:]
			} else {
				list = list[:1]
				w.Header().Set("X-Ciplat-Next-Token", "second")
			}
		}
		if list == nil {
			list = []*api.Worker{}
		}
		writeJSON(w, http.StatusOK, list)
	})
	mux.HandleFunc("GET /v1/workers/{id}", func(w http.ResponseWriter, r *http.Request) {
		if find(w, r) {
			a.mu.Lock()
			defer a.mu.Unlock()
			writeJSON(w, http.StatusOK, a.w)
		}
	})
	mux.HandleFunc("DELETE /v1/workers/{id}", func(w http.ResponseWriter, r *http.Request) {
		if !find(w, r) {
			return
		}
		a.mu.Lock()
		defer a.mu.Unlock()
		if a.w.StopRequested { // the second stop: the worker is gone by now
			a.w.Live, a.w.State = false, api.WorkerTerminated
		}
		a.w.StopRequested, a.w.DesiredStatus, a.w.Reason = true, api.AllocDesiredStop, "worker terminated by operator"
		writeJSON(w, http.StatusOK, a.w)
	})
	mux.HandleFunc("GET /v1/jobs/{id}", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("id") != "job-1" {
			writeErr(w, http.StatusNotFound, "job not found")
			return
		}
		writeJSON(w, http.StatusOK, api.Job{ID: "job-1", Name: "test", Steps: []api.StepStatus{{Name: "build"}, {Name: "test"}}})
	})
	mux.HandleFunc("GET /v1/workers/{id}/logs", func(w http.ResponseWriter, r *http.Request) {
		if !find(w, r) {
			return
		}
		enc := json.NewEncoder(w)
		for _, e := range []api.LogEntry{
			{JobID: "job-1", Step: "build", Stream: "stdout", Line: "compiling", Seq: 1, Attempt: 1},
			{JobID: "job-1", Step: "test", Stream: "stderr", Line: "FAIL x", Seq: 2, Attempt: 1},
		} {
			if s := r.URL.Query().Get("step"); s == "" || s == e.Step {
				_ = enc.Encode(e)
			}
		}
	})
	a.srv = httptest.NewServer(mux)
	t.Cleanup(a.srv.Close)
	return a
}

// TestWorkerListCommand_pages: worker list follows X-Ciplat-Next-Token to
// the last page.
func TestWorkerListCommand_pages(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	a := newWorkerAgent(t, now.Add(-90*time.Second))
	ui, _, _, _ := testUI("", now)
	r := runUI(t, ui, "worker", "list", "-all", "-address", a.srv.URL)
	r.check(t, exitOK, nil, nil)
	inOrder(t, r.stdout, "3f2a9c1e", "docker", "build1", "running", "0bad0000", "exec", "build2", "lint", "2", "1m0s", "failed")
	a.mu.Lock()
	defer a.mu.Unlock()
	got := strings.Join(a.got, "\n")
	if !strings.Contains(got, "GET /v1/workers?all=true&per_page=200\n") || !strings.Contains(got, "GET /v1/workers?all=true&next_token=second&per_page=200") {
		t.Errorf("requests:\n%s\nwant the first page, then the next by its token", got)
	}
}

func TestWorkerLogsCommand(t *testing.T) {
	a := newWorkerAgent(t, time.Now())
	r := runMain(t, "worker", "logs", "-address", a.srv.URL, "3f2a")
	r.check(t, exitOK, []string{"[build] compiling"}, []string{"[test] FAIL x"})
	if strings.Contains(r.stdout, "FAIL") || strings.Contains(r.stderr, "compiling") {
		t.Errorf("streams mixed: stdout %q stderr %q", r.stdout, r.stderr)
	}
	r = runMain(t, "worker", "logs", "-address", a.srv.URL, "-f", "-stderr", "3f2a", "test")
	r.check(t, exitOK, []string{"FAIL x"}, nil)
	if strings.Contains(r.stdout, "[test]") || strings.Contains(r.stdout, "compiling") {
		t.Errorf("one step, -stderr: stdout %q", r.stdout)
	}
	r = runMain(t, "worker", "logs", "-address", a.srv.URL, "3f2a", "lint")
	r.check(t, exitUsage, nil, []string{`has no step "lint"; its steps are: build, test`})
	r = runMain(t, "worker", "logs", "-address", a.srv.URL, "ffff")
	r.check(t, exitFailure, nil, []string{`Error: read worker "ffff": worker ffff not found (HTTP 404)`})
	r = runMain(t, "worker", "logs", "-address", a.srv.URL)
	r.check(t, exitUsage, nil, []string{"usage: ciplat worker logs"})
	a.mu.Lock()
	defer a.mu.Unlock()
	if got := strings.Join(a.got, "\n"); !strings.Contains(got, "GET /v1/workers/"+workerID+"/logs?follow=true&step=test") {
		t.Errorf("requests:\n%s\nwant a follow of step test by the full worker ID", got)
	}
}

func TestWorkerCommands(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	a := newWorkerAgent(t, now.Add(-90*time.Second))
	ui, _, _, _ := testUI("", now)
	r := runUI(t, ui, "worker", "list", "-address", a.srv.URL)
	r.check(t, exitOK, nil, nil)
	inOrder(t, r.stdout, "ID", "DRIVER", "NODE", "JOB", "ATTEMPT", "IMAGE", "AGE", "STATE",
		"3f2a9c1e", "docker", "build1", "test", "1", "ciplat/busybox:test", "1m30s", "running")

	ui, _, _, _ = testUI("", now)
	r = runUI(t, ui, "worker", "status", "-address", a.srv.URL, "3f2a")
	r.check(t, exitOK, []string{"c0ffee", "ciplat/busybox:test", "running", "1m30s"}, nil)

	r = runMain(t, "worker", "stop", "-address", a.srv.URL, "3f2a")
	r.check(t, exitOK, []string{"==> Worker 3f2a9c1e (job test on build1) is being terminated"}, nil)
	r = runMain(t, "worker", "stop", "-address", a.srv.URL, "3f2a")
	r.check(t, exitOK, []string{"has already ended (terminated)"}, nil)

	r = runMain(t, "worker", "list", "-address", a.srv.URL)
	r.check(t, exitOK, []string{"No workers"}, nil)
	r = runMain(t, "worker", "list", "-all", "-json", "-address", a.srv.URL)
	r.check(t, exitOK, []string{`"state": "terminated"`, `"reason": "worker terminated by operator"`}, nil)

	r = runMain(t, "worker", "status", "-address", a.srv.URL, "ffff")
	r.check(t, exitFailure, nil, []string{`Error: read worker "ffff": worker ffff not found (HTTP 404)`})
	r = runMain(t, "worker", "stop", "-address", a.srv.URL)
	r.check(t, exitUsage, nil, []string{"usage: ciplat worker stop"})
	r = runMain(t, "worker", "list", "-address", a.srv.URL, "extra")
	r.check(t, exitUsage, nil, []string{"usage: ciplat worker list"})
	a.mu.Lock()
	defer a.mu.Unlock()
	if !strings.Contains(strings.Join(a.got, "\n"), "GET /v1/workers?all=true") {
		t.Errorf("requests %v: want one with ?all=true", a.got)
	}
}
