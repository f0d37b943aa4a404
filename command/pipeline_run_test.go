package command

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ciplat/ciplat/api"
)

// t0 is when the test pipelines were submitted.
var t0 = time.Date(2025, 3, 4, 10, 0, 0, 0, time.UTC)

const (
	pipeID  = "3f2a9c1d-5b7e-4a8e-9c0d-1e2f3a4b5c6d"
	buildID = "0c1d2e3f-aaaa-4bbb-8ccc-000000000001"
	testID  = "1d2e3f4a-aaaa-4bbb-8ccc-000000000002"
	nodeID  = "9a8b7c6d-aaaa-4bbb-8ccc-000000000003"
)

const ciYAML = `name: ci
jobs:
  build:
    steps:
      - name: compile
        run: go build ./...
  test:
    needs: [build]
    retry: {attempts: 1}
    steps:
      - name: unit
        run: go test ./...
`

// testJob builds a job record; at is seconds after t0 it started and
// finished (0: not).
func testJob(id, name, state string, attempt int, started, finished int, reason string) *api.Job {
	j := &api.Job{ID: id, PipelineID: pipeID, Name: name, State: state, Attempt: attempt, Reason: reason,
		CreatedAt: t0, Spec: &api.JobSpec{Name: name, Retry: api.RetryPolicy{Attempts: 1}}}
	if started > 0 {
		j.StartedAt = t0.Add(time.Duration(started) * time.Second)
		j.NodeID = nodeID
	}
	if finished > 0 {
		j.FinishedAt = t0.Add(time.Duration(finished) * time.Second)
	}
	return j
}

func testPipeline(state string, jobs ...*api.Job) *api.Pipeline {
	p := &api.Pipeline{ID: pipeID, Name: "ci", State: state, SubmittedAt: t0, Jobs: jobs}
	for _, j := range jobs {
		p.JobIDs = append(p.JobIDs, j.ID)
	}
	if api.TerminalState(state) {
		p.FinishedAt = t0.Add(3500 * time.Millisecond)
	}
	return p
}

func writeSpec(t *testing.T, name, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func logLine(jobID, job, step, stream, line string, seq uint64) api.LogEntry {
	return api.LogEntry{JobID: jobID, JobName: job, Step: step, Stream: stream, Line: line, Seq: seq, Attempt: 1}
}

// newRunAgent is a fake whose pipeline goes PENDING → build RUNNING →
// build SUCCEEDED, test RUNNING → testFinal.
func newRunAgent(t *testing.T, testFinal *api.Job, final string) *fakeAgent {
	f := newFakeAgent(t)
	f.submitted = testPipeline(api.StatePending,
		testJob(buildID, "build", api.StatePending, 1, 0, 0, ""),
		testJob(testID, "test", api.StatePending, 1, 0, 0, "waiting for needs: build"))
	f.snapshots = []*api.Pipeline{
		f.submitted,
		testPipeline(api.StateRunning,
			testJob(buildID, "build", api.StateRunning, 1, 1, 0, ""),
			testJob(testID, "test", api.StatePending, 1, 0, 0, "waiting for needs: build")),
		testPipeline(api.StateRunning,
			testJob(buildID, "build", api.StateSucceeded, 1, 1, 2, ""),
			testJob(testID, "test", api.StateRunning, 1, 2, 0, "")),
		testPipeline(final,
			testJob(buildID, "build", api.StateSucceeded, 1, 1, 2, ""),
			testFinal),
	}
	f.pipelineLogs = []api.LogEntry{
		logLine(buildID, "build", "compile", "stdout", "compiling 12 packages", 1),
		logLine(testID, "", "unit", "stdout", "ok  example.com/app 0.4s", 1),
		logLine(testID, "test", "unit", "stderr", "warning: slow test", 2),
	}
	return f
}

func TestPipelineRun_Succeeded(t *testing.T) {
	f := newRunAgent(t, testJob(testID, "test", api.StateSucceeded, 1, 2, 3, ""), api.StateSucceeded)
	spec := writeSpec(t, "ci.yml", ciYAML)

	r := runMain(t, "pipeline", "run", "-address", f.addr(), "-idempotency-key", "build-42", spec)

	r.check(t, exitOK, []string{
		"==> Pipeline ci submitted: " + pipeID,
		"==> build: RUNNING\n",
		"==> build: SUCCEEDED\n",
		"==> test: SUCCEEDED\n",
		"[build/compile] compiling 12 packages\n",
		"[test/unit] ok  example.com/app 0.4s\n", // job name from the pipeline, not the entry
		"[test/unit] warning: slow test\n",       // stderr lines too
		"==> Pipeline " + pipeID + " SUCCEEDED in 3.5s\n",
	}, nil)
	if r.stderr != "" {
		t.Errorf("stderr = %q, want nothing", r.stderr)
	}
	// Log lines, then the summary table, then the outcome.
	inOrder(t, r.stdout,
		"submitted",
		"[build/compile] compiling",
		"[test/unit] warning: slow test",
		"JOB    STATE      ATTEMPTS  DURATION\n"+
			"build  SUCCEEDED  1         1s\n"+
			"test   SUCCEEDED  1         1s\n",
		"==> Pipeline "+pipeID+" SUCCEEDED")
	if strings.Contains(r.stdout, "==> test: PENDING") {
		t.Errorf("a job still in its first PENDING was printed as a transition:\n%s", r.stdout)
	}
	if string(f.gotSpec) != ciYAML || f.gotContentType != "application/yaml" || f.gotIdemKey != "build-42" {
		t.Errorf("submit got spec %q, content type %q, key %q", f.gotSpec, f.gotContentType, f.gotIdemKey)
	}
	if len(f.gotLogQuery) != 1 || f.gotLogQuery[0] != "follow=true" {
		t.Errorf("log queries = %q, want one follow=true", f.gotLogQuery)
	}
}

func TestPipelineRun_Failed(t *testing.T) {
	failed := testJob(testID, "test", api.StateFailed, 2, 5, 6, "step unit exited 1")
	failed.History = []api.AttemptRecord{
		{Attempt: 1, State: api.StateFailed, Reason: "step unit exited 1"},
		{Attempt: 2, State: api.StateFailed, Reason: "step unit exited 1"},
	}
	f := newRunAgent(t, failed, api.StateFailed)
	retrying := testJob(testID, "test", api.StatePending, 1, 2, 3, "")
	retrying.History = []api.AttemptRecord{{Attempt: 1, State: api.StateFailed, Reason: "step unit exited 1"}}
	// Insert "test waits for its retry" before the end.
	f.snapshots = append(f.snapshots[:3:3],
		testPipeline(api.StateRunning, testJob(buildID, "build", api.StateSucceeded, 1, 1, 2, ""), retrying),
		f.snapshots[3])
	spec := writeSpec(t, "ci.yml", ciYAML)

	r := runMain(t, "pipeline", "run", "-address", f.addr(), spec)

	r.check(t, exitFailure, []string{
		"==> test: PENDING (retry 1 of 1 after: step unit exited 1)\n",
		"==> test: FAILED (step unit exited 1)\n",
		"test   FAILED     2         1s\n",
		"==> Pipeline " + pipeID + " FAILED in 3.5s\n",
	}, nil)
	inOrder(t, r.stdout, "==> test: RUNNING", "==> test: PENDING (retry", "==> test: FAILED")
}

func TestPipelineRun_Cancelled(t *testing.T) {
	f := newRunAgent(t, testJob(testID, "test", api.StateCancelled, 1, 2, 3, "cancelled by user"), api.StateCancelled)
	r := runMain(t, "pipeline", "run", "-address", f.addr(), writeSpec(t, "ci.yml", ciYAML))
	r.check(t, exitFailure, []string{"==> test: CANCELLED (cancelled by user)", "CANCELLED in 3.5s"}, nil)
}

func TestPipelineRun_InvalidSpec(t *testing.T) {
	f := newFakeAgent(t)
	f.submitStatus = 400
	f.submitError = "line 3, jobs.build.steps: a job needs at least one step\nline 9, jobs.test.needs: unknown job \"biuld\""

	r := runMain(t, "pipeline", "run", "-address", f.addr(), writeSpec(t, "ci.yml", ciYAML))

	r.check(t, exitUsage, nil, nil)
	want := "Error: invalid pipeline spec:\n" +
		"  line 3, jobs.build.steps: a job needs at least one step\n" +
		"  line 9, jobs.test.needs: unknown job \"biuld\"\n"
	if r.stderr != want {
		t.Errorf("stderr =\n%s\nwant\n%s", r.stderr, want)
	}
}

func TestPipelineRun_InvalidSpecOneLine(t *testing.T) {
	f := newFakeAgent(t)
	f.submitStatus = 400
	f.submitError = "invalid pipeline spec: yaml: line 2: mapping values are not allowed here"
	r := runMain(t, "pipeline", "run", "-address", f.addr(), writeSpec(t, "ci.yml", "name: x: y\n"))
	r.check(t, exitUsage, nil, []string{"Error: invalid pipeline spec: yaml: line 2: mapping values are not allowed here\n"})
}

func TestPipelineRun_TooLarge(t *testing.T) {
	f := newFakeAgent(t)
	f.submitStatus = 413
	f.submitError = "request body is larger than 1048576 bytes"
	r := runMain(t, "pipeline", "run", "-address", f.addr(), writeSpec(t, "big.yml", ciYAML))
	r.check(t, exitUsage, nil, []string{"Error: pipeline spec", "too large: request body is larger than 1048576 bytes"})
}

func TestPipelineRun_BadFile(t *testing.T) {
	f := newFakeAgent(t)
	missing := filepath.Join(t.TempDir(), "nope.yml")
	r := runMain(t, "pipeline", "run", "-address", f.addr(), missing)
	r.check(t, exitUsage, nil, []string{"Error: cannot read pipeline spec: open " + missing + ": no such file or directory\n"})

	r = runMain(t, "pipeline", "run", "-address", f.addr(), writeSpec(t, "empty.yml", "\n  \n"))
	r.check(t, exitUsage, nil, []string{"Error: pipeline spec ", "empty.yml is empty: write a YAML pipeline"})
	if f.gotSpec != nil {
		t.Errorf("an unreadable spec was submitted")
	}
}

// closedAddr is the address of a server that no longer listens.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := "http://" + l.Addr().String()
	l.Close()
	return addr
}

func TestPipelineRun_Unreachable(t *testing.T) {
	addr := closedAddr(t)
	spec := writeSpec(t, "ci.yml", ciYAML)
	want := "Error: cannot reach the ciplat agent at " + addr +
		" (is 'ciplat agent -dev' running? set CIPLAT_ADDR): dial tcp "

	r := runMain(t, "pipeline", "run", "-address", addr, spec)
	r.check(t, exitFailure, nil, []string{want, "connection refused"})
	if n := strings.Count(r.stderr, "\n"); n != 1 {
		t.Errorf("stderr has %d lines, want one:\n%s", n, r.stderr)
	}

	t.Setenv("CIPLAT_ADDR", addr) // the default of -address
	r = runMain(t, "pipeline", "run", spec)
	r.check(t, exitFailure, nil, []string{want})
}

func TestPipelineRun_StdinJSONDetach(t *testing.T) {
	f := newRunAgent(t, testJob(testID, "test", api.StateSucceeded, 1, 2, 3, ""), api.StateSucceeded)
	spec := `{"name": "ci", "jobs": {}}`
	ui, _, _, _ := testUI(spec, t0)

	r := runUI(t, ui, "pipeline", "run", "-address", f.addr(), "-", "-detach") // flags after the file work too

	r.check(t, exitOK, []string{"==> Pipeline ci submitted: " + pipeID + "\n"}, nil)
	if r.stdout != "==> Pipeline ci submitted: "+pipeID+"\n" {
		t.Errorf("-detach printed more than the submit line:\n%s", r.stdout)
	}
	if string(f.gotSpec) != spec || f.gotContentType != "application/json" {
		t.Errorf("submit got %q as %q", f.gotSpec, f.gotContentType)
	}
	if len(f.gotLogQuery) != 0 {
		t.Errorf("-detach followed the logs")
	}
}

func TestPipelineRun_Interrupt(t *testing.T) {
	f := newRunAgent(t, testJob(testID, "test", api.StateSucceeded, 1, 2, 3, ""), api.StateSucceeded)
	f.snapshots = f.snapshots[:2] // stays RUNNING
	f.holdLogs = true
	ui, out, errOut, interrupt := testUI("", t0)
	spec := writeSpec(t, "ci.yml", ciYAML)
	done := make(chan int, 1)
	go func() { done <- run(ui, []string{"pipeline", "run", "-address", f.addr(), spec}) }()

	<-f.logsStarted
	interrupt()
	var r result
	select {
	case code := <-done:
		r = result{out.String(), errOut.String(), code}
	case <-time.After(20 * time.Second):
		t.Fatal("Ctrl-C did not stop the follow")
	}

	r.check(t, exitFailure, nil, []string{"Pipeline " + pipeID + " keeps running", "ciplat pipeline cancel " + pipeID})
	if strings.Contains(r.stdout, "JOB ") {
		t.Errorf("an interrupted follow printed a summary:\n%s", r.stdout)
	}
	if f.cancels != 0 {
		t.Errorf("Ctrl-C cancelled the pipeline")
	}
}

func TestPipelineRun_LogStreamBreaks(t *testing.T) {
	f := newRunAgent(t, testJob(testID, "test", api.StateSucceeded, 1, 2, 3, ""), api.StateSucceeded)
	f.pipelineLogs = f.pipelineLogs[:1]
	f.rawLogTail = "{not json\n"

	r := runMain(t, "pipeline", "run", "-address", f.addr(), writeSpec(t, "ci.yml", ciYAML))

	r.check(t, exitOK, []string{"[build/compile] compiling", "==> test: SUCCEEDED", "SUCCEEDED in 3.5s"},
		[]string{"==> Stopped streaming logs (read logs: decode log entry", "waiting for the pipeline to finish"})
}

func TestPipelineRun_PipelineVanishes(t *testing.T) {
	f := newRunAgent(t, testJob(testID, "test", api.StateSucceeded, 1, 2, 3, ""), api.StateSucceeded)
	f.snapshots = nil // GET answers 404
	r := runMain(t, "pipeline", "run", "-address", f.addr(), writeSpec(t, "ci.yml", ciYAML))
	r.check(t, exitFailure, nil, []string{"Error: watch pipeline " + pipeID + ": pipeline " + pipeID + " not found (HTTP 404)"})
}

func TestPipelineRun_Color(t *testing.T) {
	f := newRunAgent(t, testJob(testID, "test", api.StateSucceeded, 1, 2, 3, ""), api.StateSucceeded)
	ui, _, _, _ := testUI("", t0)
	ui.Color = true
	r := runUI(t, ui, "pipeline", "run", "-address", f.addr(), writeSpec(t, "ci.yml", ciYAML))
	r.check(t, exitOK, []string{
		"==> build: " + ansiGreen + "SUCCEEDED" + ansiReset + "\n",
		ansiCyan + "[build/compile]" + ansiReset + " compiling",
		ansiYellow + "[test/unit]" + ansiReset + " warning: slow test",
	}, nil)
}
