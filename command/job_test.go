package command

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/ciplat/ciplat/api"
)

func intp(i int) *int { return &i }

func TestJobStatus(t *testing.T) {
	f := newFakeAgent(t)
	j := testJob(testID, "test", api.StateFailed, 2, 5, 7, "step unit exited 1")
	j.AllocID = "5e6f7a8b-0000-4000-8000-000000000000"
	j.Steps = []api.StepStatus{
		{Name: "deps", State: api.StepSucceeded, ExitCode: intp(0), StartedAt: t0.Add(5 * time.Second), FinishedAt: t0.Add(5500 * time.Millisecond)},
		{Name: "unit", State: api.StepFailed, ExitCode: intp(1), StartedAt: t0.Add(5500 * time.Millisecond), FinishedAt: t0.Add(7 * time.Second)},
	}
	j.History = []api.AttemptRecord{
		{Attempt: 1, State: api.StateFailed, NodeID: nodeID, AllocID: "4d5e6f7a-0000", Reason: "step unit exited 1",
			StartedAt: t0.Add(2 * time.Second), FinishedAt: t0.Add(3 * time.Second)},
	}
	f.jobs[testID] = j
	pending := testJob(buildID, "build", api.StatePending, 1, 0, 0, "")
	pending.Explain = "3 nodes lacked memory"
	pending.Placement = &api.PlacementMetrics{NodesEvaluated: 3, NodesExhausted: 3, ExhaustedBy: map[string]int{"memory": 3}}
	f.jobs[buildID] = pending

	r := runMain(t, "job", "status", "-address", f.addr(), "1d2e")
	r.check(t, exitOK, []string{
		"ID       = " + testID + "\n",
		"Pipeline = " + pipeID + "\n",
		"Name     = test\n",
		"State    = FAILED\n",
		"Attempt  = 2 of at most 2\n",
		"Node     = " + nodeID + "\n",
		"Alloc    = 5e6f7a8b-0000-4000-8000-000000000000\n",
		"Reason   = step unit exited 1\n",
		"STEP  STATE      EXIT  DURATION  REASON\n",
		"deps  SUCCEEDED  0     500ms     -\n",
		"unit  FAILED     1     1.5s      -\n",
		"ATTEMPT  STATE   NODE      ALLOC     DURATION  REASON\n",
		"1        FAILED  9a8b7c6d  4d5e6f7a  1s        step unit exited 1\n",
	}, nil)

	r = runMain(t, "job", "status", "-address", f.addr(), "0c1d")
	r.check(t, exitOK, []string{
		"State    = PENDING\n",
		"Placement (why this job is pending)\n  3 nodes lacked memory\n",
		"nodes evaluated: 3, filtered: 0, exhausted: 3 (memory: 3)",
	}, nil)

	r = runMain(t, "job", "status", "-json", "-address", f.addr(), "1d2e")
	var got api.Job
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || got.ID != testID || len(got.Steps) != 2 {
		t.Errorf("-json printed %q (%v)", r.stdout, err)
	}

	r = runMain(t, "job", "status", "-address", f.addr(), "ffff")
	r.check(t, exitFailure, nil, []string{`Error: read job "ffff": job ffff not found (HTTP 404)`})
}

func TestJobLogs(t *testing.T) {
	f := newFakeAgent(t)
	j := testJob(testID, "test", api.StateSucceeded, 1, 1, 2, "")
	j.Steps = []api.StepStatus{{Name: "deps", State: api.StepSucceeded}, {Name: "unit", State: api.StepSucceeded}}
	f.jobs[testID] = j
	f.jobLogs[testID] = []api.LogEntry{
		logLine(testID, "test", "deps", "stdout", "go: downloading x", 1),
		logLine(testID, "test", "unit", "stdout", "=== RUN TestA", 2),
		logLine(testID, "test", "unit", "stderr", "panic: boom", 3),
	}

	// Several steps: each line says its step; stderr lines go to stderr.
	r := runMain(t, "job", "logs", "-address", f.addr(), "1d2e")
	r.check(t, exitOK, nil, nil)
	if want := "[deps] go: downloading x\n[unit] === RUN TestA\n"; r.stdout != want {
		t.Errorf("stdout = %q, want %q", r.stdout, want)
	}
	if want := "[unit] panic: boom\n"; r.stderr != want {
		t.Errorf("stderr = %q, want %q", r.stderr, want)
	}

	// One step: the raw lines.
	r = runMain(t, "job", "logs", "-address", f.addr(), "1d2e", "unit")
	if r.code != exitOK || r.stdout != "=== RUN TestA\n" || r.stderr != "panic: boom\n" {
		t.Errorf("logs of one step: code %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}

	// -stderr: only stderr lines, to stdout; -f asks the server to follow.
	r = runMain(t, "job", "logs", "-address", f.addr(), "-f", "-stderr", "1d2e")
	if r.code != exitOK || r.stdout != "[unit] panic: boom\n" || r.stderr != "" {
		t.Errorf("-stderr: code %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if q := f.gotLogQuery; len(q) != 3 || q[1] != "step=unit" || q[2] != "follow=true" {
		t.Errorf("log queries = %q", q)
	}

	r = runMain(t, "job", "logs", "-address", f.addr(), "1d2e", "lint")
	r.check(t, exitUsage, nil, []string{`Error: job test (1d2e3f4a) has no step "lint"; its steps are: deps, unit`})
}
