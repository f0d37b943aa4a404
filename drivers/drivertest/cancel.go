package drivertest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ciplat/ciplat/drivers"
)

// blockingStep echoes "started" and then blocks far longer than any test.
func (s *suite) blockingStep(name string) drivers.StepConfig {
	return drivers.StepConfig{Name: name, Run: script(
		s.lang.Echo(drivers.Stdout, "started"),
		s.lang.Sleep(s.opts.Timeout*4),
		s.lang.Echo(drivers.Stdout, "never"),
	)}
}

// testTimeout: a ctx deadline kills a blocking step promptly, RunStep
// returns context.DeadlineExceeded, and the worker stays usable.
func testTimeout(t *testing.T, s *suite) {
	d := s.newDriver(t)
	h := s.newWorker(t, d, nil)
	const deadline = 500 * time.Millisecond
	ctx, cancel := context.WithTimeout(s.ctx(t), deadline)
	defer cancel()
	start := time.Now()
	res, rec, err := run(ctx, d, h, s.blockingStep("sleeps"))
	took := time.Since(start)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("RunStep past its deadline: exit %d, err %v; want context.DeadlineExceeded; output:%s", res.ExitCode, err, rec)
	}
	if took > deadline+s.opts.KillWithin {
		t.Errorf("RunStep returned %v after start, want within %v of the %v deadline", took, s.opts.KillWithin, deadline)
	}
	if hasLine(rec, "never") {
		t.Errorf("the step went on after its deadline; output:%s", rec)
	}
	s.mustRun(t, d, h, drivers.StepConfig{Name: "after-timeout", Run: s.lang.Echo(drivers.Stdout, "ok")})
}

// testCancel: cancelling ctx kills a running step promptly, RunStep returns
// context.Canceled, and the worker stays usable.
func testCancel(t *testing.T, s *suite) {
	d := s.newDriver(t)
	h := s.newWorker(t, d, nil)
	ctx, cancel := context.WithCancel(s.ctx(t))
	defer cancel()
	rec := NewRecorder()
	done := runAsync(ctx, d, h, s.blockingStep("sleeps"), rec)
	if err := rec.WaitLine(s.ctx(t), drivers.Stdout, "started"); err != nil {
		t.Fatalf("waiting for the step to start: %v; output:%s", err, rec)
	}
	cancel()
	o := await(t, done, s.opts.KillWithin, "cancelled step")
	if !errors.Is(o.err, context.Canceled) {
		t.Errorf("RunStep after cancel: exit %d, err %v; want context.Canceled", o.res.ExitCode, o.err)
	}
	if late := rec.Late(); late > 0 {
		t.Errorf("%d lines emitted after RunStep returned", late)
	}
	s.mustRun(t, d, h, drivers.StepConfig{Name: "after-cancel", Run: s.lang.Echo(drivers.Stdout, "ok")})
}

// testDestroyDuringStep: DestroyWorker while a step runs makes RunStep
// return promptly with an error wrapping ErrWorkerNotFound, and the worker
// is gone.
func testDestroyDuringStep(t *testing.T, s *suite) {
	d := s.newDriver(t)
	h := s.newWorker(t, d, nil)
	rec := NewRecorder()
	done := runAsync(s.ctx(t), d, h, s.blockingStep("sleeps"), rec)
	if err := rec.WaitLine(s.ctx(t), drivers.Stdout, "started"); err != nil {
		t.Fatalf("waiting for the step to start: %v; output:%s", err, rec)
	}
	start := time.Now()
	if err := d.DestroyWorker(s.ctx(t), h); err != nil {
		t.Fatalf("DestroyWorker during a step: %v", err)
	}
	o := await(t, done, s.opts.KillWithin, "step of a destroyed worker")
	if took := o.at.Sub(start); took > s.opts.KillWithin {
		t.Errorf("RunStep returned %v after DestroyWorker began, want within %v", took, s.opts.KillWithin)
	}
	wantNotFound(t, "RunStep interrupted by DestroyWorker", o.err)
	if late := rec.Late(); late > 0 {
		t.Errorf("%d lines emitted after RunStep returned", late)
	}
	wantNotFound(t, "RecoverWorker after DestroyWorker", d.RecoverWorker(s.ctx(t), h))
}

// hasLine reports whether the recorder holds a line with text.
func hasLine(rec *Recorder, text string) bool {
	for _, l := range rec.Lines() {
		if l.Line == text {
			return true
		}
	}
	return false
}
