package command

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ciplat/ciplat/api"
)

// fakeAgent serves canned /v1 answers for the CLI's unit tests. The real
// agent is exercised by the end-to-end test with the binary.
type fakeAgent struct {
	t   *testing.T
	srv *httptest.Server

	mu sync.Mutex
	// submitStatus and submitError make POST /v1/pipelines fail.
	submitStatus int
	submitError  string
	// submitted is the pipeline POST /v1/pipelines answers with (ID, name,
	// jobs); snapshots[i] answers GET /v1/pipelines/{id} with ?index=i, and
	// an index past the last blocks like a real blocking query.
	submitted *api.Pipeline
	snapshots []*api.Pipeline
	// pipelineLogs is written as NDJSON by GET /v1/pipelines/{id}/logs,
	// then rawLogTail (to break the stream) unless empty.
	pipelineLogs []api.LogEntry
	rawLogTail   string
	// logsStarted is closed when a pipeline log stream starts; with
	// holdLogs the stream then stays open until the request ends.
	logsStarted chan struct{}
	logsOnce    sync.Once
	holdLogs    bool

	stubs      []*api.PipelineStub
	jobs       map[string]*api.Job
	jobLogs    map[string][]api.LogEntry
	nodes      []*api.Node
	cancelCode int // 0: 200 with the snapshot; else the error status
	cancelMsg  string

	// What the CLI sent.
	gotSpec        []byte
	gotContentType string
	gotIdemKey     string
	gotLogQuery    []string
	cancels        int
}

func newFakeAgent(t *testing.T) *fakeAgent {
	t.Helper()
	f := &fakeAgent{t: t, jobs: map[string]*api.Job{}, jobLogs: map[string][]api.LogEntry{}, logsStarted: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/pipelines", f.handleSubmit)
	mux.HandleFunc("GET /v1/pipelines", f.handleList)
	mux.HandleFunc("GET /v1/pipelines/{id}", f.handlePipeline)
	mux.HandleFunc("GET /v1/pipelines/{id}/logs", f.handlePipelineLogs)
	mux.HandleFunc("POST /v1/pipelines/{id}/cancel", f.handleCancel)
	mux.HandleFunc("GET /v1/jobs/{id}", f.handleJob)
	mux.HandleFunc("GET /v1/jobs/{id}/logs", f.handleJobLogs)
	mux.HandleFunc("GET /v1/nodes", f.handleNodes)
	mux.HandleFunc("GET /v1/nodes/{id}", f.handleNode)
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeAgent) addr() string { return f.srv.URL }

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func writeErr(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}

func (f *fakeAgent) handleSubmit(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gotSpec = body
	f.gotContentType = r.Header.Get("Content-Type")
	f.gotIdemKey = r.Header.Get("Idempotency-Key")
	if f.submitStatus != 0 {
		writeErr(w, f.submitStatus, f.submitError)
		return
	}
	writeJSON(w, http.StatusCreated, f.submitted)
}

func (f *fakeAgent) handleList(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	writeJSON(w, http.StatusOK, f.stubs)
}

func (f *fakeAgent) handlePipeline(w http.ResponseWriter, r *http.Request) {
	idx, _ := strconv.Atoi(r.URL.Query().Get("index"))
	f.mu.Lock()
	snaps := f.snapshots
	f.mu.Unlock()
	if len(snaps) == 0 || !strings.HasPrefix(snaps[0].ID, r.PathValue("id")) {
		writeErr(w, http.StatusNotFound, "pipeline "+r.PathValue("id")+" not found")
		return
	}
	if idx >= len(snaps) {
		<-r.Context().Done() // nothing newer: block like a blocking query
		return
	}
	w.Header().Set("X-Ciplat-Index", strconv.Itoa(idx+1))
	writeJSON(w, http.StatusOK, snaps[idx])
}

func (f *fakeAgent) handlePipelineLogs(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	entries, tail, hold := f.pipelineLogs, f.rawLogTail, f.holdLogs
	f.gotLogQuery = append(f.gotLogQuery, r.URL.RawQuery)
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/x-ndjson")
	enc := json.NewEncoder(w)
	for _, e := range entries {
		_ = enc.Encode(e)
	}
	if tail != "" {
		_, _ = io.WriteString(w, tail)
	}
	w.(http.Flusher).Flush()
	f.logsOnce.Do(func() { close(f.logsStarted) })
	if hold {
		<-r.Context().Done()
	}
}

func (f *fakeAgent) handleCancel(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cancels++
	if f.cancelCode != 0 {
		writeErr(w, f.cancelCode, f.cancelMsg)
		return
	}
	p := *f.snapshots[len(f.snapshots)-1]
	p.State = api.StateCancelled
	writeJSON(w, http.StatusOK, &p)
}

// jobByPrefix finds a job by a unique ID prefix, as the server does.
func (f *fakeAgent) jobByPrefix(id string) *api.Job {
	f.mu.Lock()
	defer f.mu.Unlock()
	for full, j := range f.jobs {
		if strings.HasPrefix(full, id) {
			return j
		}
	}
	return nil
}

func (f *fakeAgent) handleJob(w http.ResponseWriter, r *http.Request) {
	j := f.jobByPrefix(r.PathValue("id"))
	if j == nil {
		writeErr(w, http.StatusNotFound, "job "+r.PathValue("id")+" not found")
		return
	}
	writeJSON(w, http.StatusOK, j)
}

func (f *fakeAgent) handleJobLogs(w http.ResponseWriter, r *http.Request) {
	j := f.jobByPrefix(r.PathValue("id"))
	if j == nil {
		writeErr(w, http.StatusNotFound, "job not found")
		return
	}
	f.mu.Lock()
	f.gotLogQuery = append(f.gotLogQuery, r.URL.RawQuery)
	entries := f.jobLogs[j.ID]
	f.mu.Unlock()
	step := r.URL.Query().Get("step")
	enc := json.NewEncoder(w)
	for _, e := range entries {
		if step == "" || e.Step == step {
			_ = enc.Encode(e)
		}
	}
}

func (f *fakeAgent) handleNodes(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	writeJSON(w, http.StatusOK, f.nodes)
}

func (f *fakeAgent) handleNode(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, n := range f.nodes {
		if strings.HasPrefix(n.ID, r.PathValue("id")) {
			writeJSON(w, http.StatusOK, n)
			return
		}
	}
	writeErr(w, http.StatusNotFound, "node "+r.PathValue("id")+" not found")
}

// result is what one CLI run printed and returned.
type result struct {
	stdout, stderr string
	code           int
}

// testUI is a UI over buffers with a fixed clock and a Ctrl-C the test
// triggers by calling the returned function.
func testUI(stdin string, now time.Time) (ui *UI, out, errOut *bytes.Buffer, interrupt func()) {
	out, errOut = &bytes.Buffer{}, &bytes.Buffer{}
	sigCtx, sig := context.WithCancel(context.Background())
	ui = &UI{
		Stdin:  strings.NewReader(stdin),
		Stdout: out,
		Stderr: errOut,
		Now:    func() time.Time { return now },
		Interrupt: func(parent context.Context) (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(parent)
			stop := context.AfterFunc(sigCtx, cancel)
			return ctx, func() { stop(); cancel() }
		},
	}
	return ui, out, errOut, sig
}

// runUI runs the CLI on ui and fails the test if it does not return in time.
func runUI(t *testing.T, ui *UI, args ...string) result {
	t.Helper()
	done := make(chan int, 1)
	go func() { done <- run(ui, args) }()
	select {
	case code := <-done:
		return result{ui.Stdout.(*bytes.Buffer).String(), ui.Stderr.(*bytes.Buffer).String(), code}
	case <-time.After(20 * time.Second):
		t.Fatalf("ciplat %s did not return", strings.Join(args, " "))
		return result{}
	}
}

// runMain runs Main, the process's entry point, with buffers.
func runMain(t *testing.T, args ...string) result {
	t.Helper()
	var out, errOut bytes.Buffer
	done := make(chan int, 1)
	go func() { done <- Main(args, &out, &errOut) }()
	select {
	case code := <-done:
		return result{out.String(), errOut.String(), code}
	case <-time.After(20 * time.Second):
		t.Fatalf("ciplat %s did not return", strings.Join(args, " "))
		return result{}
	}
}

// check fails the test when the exit code differs or a wanted piece of
// output is missing.
func (r result) check(t *testing.T, code int, stdout, stderr []string) {
	t.Helper()
	if r.code != code {
		t.Errorf("exit code = %d, want %d\nstdout:\n%s\nstderr:\n%s", r.code, code, r.stdout, r.stderr)
	}
	for _, s := range stdout {
		if !strings.Contains(r.stdout, s) {
			t.Errorf("stdout lacks %q:\n%s", s, r.stdout)
		}
	}
	for _, s := range stderr {
		if !strings.Contains(r.stderr, s) {
			t.Errorf("stderr lacks %q:\n%s", s, r.stderr)
		}
	}
}

// inOrder fails the test unless the pieces appear in s in this order.
func inOrder(t *testing.T, s string, pieces ...string) {
	t.Helper()
	at := 0
	for _, p := range pieces {
		i := strings.Index(s[at:], p)
		if i < 0 {
			t.Errorf("%q missing or out of order in:\n%s", p, s)
			return
		}
		at += i + len(p)
	}
}
