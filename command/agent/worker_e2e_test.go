package agent_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ciplat/ciplat/api"
)

// TestE2E_WorkerStop runs a long job in the exec driver through the real
// binary: `ciplat worker list` shows its worker, `ciplat worker stop` ends
// it, the job is retried per its policy (one retry), and stopping the
// retry's worker fails the job for good with the operator's reason.
func TestE2E_WorkerStop(t *testing.T) {
	ag := startAgent(t, t.TempDir())
	spec := "name: long\njobs:\n  a:\n    retry: { attempts: 1, backoff: 100ms }\n    steps:\n      - name: wait\n        run: echo started-$CIPLAT_ATTEMPT; sleep 60\n"
	c := apiClient(t, ag.addr)
	ctx := context.Background()
	p, err := c.SubmitPipeline(ctx, []byte(spec), nil)
	if err != nil {
		t.Fatal(err)
	}
	waitLine := func(line string) {
		t.Helper()
		lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		seen := errors.New("seen")
		err := c.PipelineLogs(lctx, p.ID, &api.LogOptions{Follow: true}, func(e *api.LogEntry) error {
			if e.Line == line {
				return seen
			}
			return nil
		})
		if err != seen {
			t.Fatalf("never saw %q: %v", line, err)
		}
	}
	liveWorker := func(attempt int) *api.Worker {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			ws, err := c.Workers(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range ws {
				if w.Attempt == attempt && w.State == api.WorkerRunning {
					return w
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatalf("no running worker for attempt %d", attempt)
		return nil
	}
	waitJob := func(what string, cond func(*api.Job) bool) *api.Job {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			got, _, err := c.Pipeline(ctx, p.ID, nil)
			if err != nil {
				t.Fatal(err)
			}
			if j := got.Jobs[0]; cond(j) {
				return j
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: job is %+v", what, got.Jobs[0])
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	waitLine("started-1")
	w := liveWorker(1)
	out, errOut, code := cli(t, ag.addr, "worker", "list")
	if code != 0 || !strings.Contains(out, w.ID[:8]) || !strings.Contains(out, "exec") || !strings.Contains(out, "running") {
		t.Fatalf("worker list exited %d:\n%s%s", code, out, errOut)
	}
	out, errOut, code = cli(t, ag.addr, "worker", "status", w.ID[:8])
	if code != 0 || !strings.Contains(out, "exec") || w.HandleID == "" {
		t.Fatalf("worker status exited %d:\n%s%s (worker %+v)", code, out, errOut, w)
	}
	out, errOut, code = cli(t, ag.addr, "worker", "stop", w.ID[:8])
	if code != 0 || !strings.Contains(out, "is being terminated") {
		t.Fatalf("worker stop exited %d:\n%s%s", code, out, errOut)
	}
	// Idempotent.
	if _, errOut, code = cli(t, ag.addr, "worker", "stop", w.ID); code != 0 {
		t.Fatalf("second worker stop exited %d: %s", code, errOut)
	}
	// The retry runs in a new worker; the old one is reported terminated.
	waitLine("started-2")
	w2 := liveWorker(2)
	deadline := time.Now().Add(30 * time.Second)
	for {
		old, err := c.Worker(ctx, w.ID)
		if err != nil {
			t.Fatal(err)
		}
		if old.State == api.WorkerTerminated && !old.Live {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stopped worker is %+v, want terminated", old)
		}
		time.Sleep(50 * time.Millisecond)
	}
	j := waitJob("retry", func(j *api.Job) bool { return j.Attempt == 2 && j.State == api.StateRunning })
	if len(j.History) != 1 || j.History[0].Reason != "worker terminated by operator" || j.History[0].State != api.StateTerminated {
		t.Fatalf("history %+v: want attempt 1 TERMINATED by the operator", j.History)
	}

	// No retry left: stopping the second worker fails the job for good.
	if out, errOut, code = cli(t, ag.addr, "worker", "stop", w2.ID); code != 0 {
		t.Fatalf("worker stop exited %d: %s%s", code, out, errOut)
	}
	j = waitJob("fail for good", func(j *api.Job) bool { return j.State == api.StateTerminated })
	if j.Reason != "worker terminated by operator" {
		t.Fatalf("job reason %q", j.Reason)
	}
	deadline = time.Now().Add(30 * time.Second)
	for {
		out, _, _ = cli(t, ag.addr, "worker", "list")
		if strings.Contains(out, "No workers") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("workers still listed after both were stopped:\n%s", out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	out, _, _ = cli(t, ag.addr, "worker", "list", "-all")
	if strings.Count(out, "terminated") != 2 {
		t.Fatalf("worker list -all: want both workers terminated:\n%s", out)
	}
}
