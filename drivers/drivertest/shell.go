package drivertest

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ciplat/ciplat/drivers"
)

// The subtests in this file need POSIX sh; Run skips them for other Langs.

// testShellErrexit: steps run with `sh -e`, so a failing command ends the
// step with its status.
func testShellErrexit(t *testing.T, s *suite) {
	d := s.newDriver(t)
	h := s.newWorker(t, d, nil)
	res, rec, err := run(s.ctx(t), d, h, drivers.StepConfig{Name: "errexit", Run: "echo before\nfalse\necho after-false"})
	if err != nil || res.ExitCode != 1 {
		t.Fatalf("`false` under sh -e: exit %d, err %v; want exit 1; output:%s", res.ExitCode, err, rec)
	}
	wantTexts(t, rec, drivers.Stdout, "before")
}

// testShellWorkdir: a step starts in the workspace, CIPLAT_WORKSPACE.
func testShellWorkdir(t *testing.T, s *suite) {
	d := s.newDriver(t)
	h := s.newWorker(t, d, nil)
	s.mustRun(t, d, h, drivers.StepConfig{Name: "workdir", Run: `test "$(pwd -P)" = "$(cd "$CIPLAT_WORKSPACE" && pwd -P)"`})
}

// testShellStdinEmpty: a step reading stdin sees EOF at once instead of
// hanging.
func testShellStdinEmpty(t *testing.T, s *suite) {
	d := s.newDriver(t)
	h := s.newWorker(t, d, nil)
	rec := s.mustRun(t, d, h, drivers.StepConfig{Name: "stdin", Run: "if read -r line; then echo got-input; else echo eof; fi"})
	wantTexts(t, rec, drivers.Stdout, "eof")
}

// testBackgroundChildDoesNotHang: a step ends when its shell exits, even if
// a background child still holds stdout and stderr open.
func testBackgroundChildDoesNotHang(t *testing.T, s *suite) {
	d := s.newDriver(t)
	h := s.newWorker(t, d, nil)
	rec := NewRecorder()
	start := time.Now()
	done := runAsync(s.ctx(t), d, h, drivers.StepConfig{Name: "background", Run: "sleep 300 &\necho started"}, rec)
	o := await(t, done, s.opts.KillWithin, "step that left `sleep 300 &` behind")
	if o.err != nil || o.res.ExitCode != 0 {
		t.Fatalf("exit %d, err %v; want exit 0; output:%s", o.res.ExitCode, o.err, rec)
	}
	wantTexts(t, rec, drivers.Stdout, "started")
	t.Logf("returned after %v", o.at.Sub(start))
}

// testDestroyKillsBackground: DestroyWorker during a step also kills the
// step's background children. Needs Options.HostProcesses to see them.
func testDestroyKillsBackground(t *testing.T, s *suite) {
	if !s.opts.HostProcesses || !canSeeProcesses() {
		t.Skip("needs Options.HostProcesses on a unix host: the test checks by PID that the child is gone")
	}
	d := s.newDriver(t)
	h := s.newWorker(t, d, nil)
	rec := NewRecorder()
	done := runAsync(s.ctx(t), d, h, drivers.StepConfig{Name: "background", Run: "sleep 300 &\necho \"pid=$!\"\nwait"}, rec)
	l, err := rec.Wait(s.ctx(t), func(l drivers.LogLine) bool { return strings.HasPrefix(l.Line, "pid=") })
	if err != nil {
		t.Fatalf("waiting for the background PID: %v; output:%s", err, rec)
	}
	pid, err := strconv.Atoi(strings.TrimPrefix(l.Line, "pid="))
	if err != nil || !processAlive(pid) {
		t.Fatalf("background child %q is not a live process (%v); output:%s", l.Line, err, rec)
	}
	if err := d.DestroyWorker(s.ctx(t), h); err != nil {
		t.Fatalf("DestroyWorker during a step: %v", err)
	}
	o := await(t, done, s.opts.KillWithin, "step of a destroyed worker")
	wantNotFound(t, "RunStep interrupted by DestroyWorker", o.err)
	// Killing is asynchronous: poll with a deadline.
	deadline := time.Now().Add(s.opts.KillWithin)
	for processAlive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("background child %d still alive %v after DestroyWorker returned", pid, s.opts.KillWithin)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
