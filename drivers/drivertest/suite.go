// Package drivertest is the conformance suite every ciplat driver must pass:
// exec, mock, docker (against the real engine), kubernetes (against a real
// API server) and external drivers through their plugin. A driver's test
// calls Run with a constructor; the suite checks the lifecycle and
// concurrency rules that drivers.Driver documents, against the real thing.
//
// The steps are POSIX sh. A driver that does not run a shell passes its own
// Lang (Options.Lang); the subtests that only a shell can express are then
// skipped with t.Skip and a reason, never silently passed.
package drivertest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ciplat/ciplat/drivers"
)

// Options adapts the suite to a driver.
type Options struct {
	// Image is WorkerConfig.Image for every worker; container drivers need
	// one with a POSIX sh (busybox, alpine). Drivers without images ignore it.
	Image string
	// Lang writes the steps; nil means Sh. With any other Lang the
	// shell-only subtests are skipped (see Lang).
	Lang Lang
	// HostProcesses says a step's processes are visible to the test process
	// by PID (the exec driver and plugins over it: same host, same PID
	// namespace; kubernetes on kwok, whose execs run on the test's host). It
	// enables the check that DestroyWorker leaves no background child alive;
	// a driver whose steps run in containers leaves it false, as removing the
	// container is what kills everything there.
	HostProcesses bool
	// Timeout bounds each driver call that should simply succeed (create,
	// a short step, destroy). Zero means 30s; raise it for drivers that pull
	// images.
	Timeout time.Duration
	// KillWithin is how soon a step must return after its context ends or
	// its worker is destroyed. Zero means 5s.
	KillWithin time.Duration
}

// suite is one Run: the constructor and the options with defaults applied.
type suite struct {
	newDriver func(t *testing.T) drivers.Driver
	opts      Options
	lang      Lang
	shell     bool // lang is POSIX sh
}

// testCase is one subtest. shell marks those that only POSIX sh can express.
type testCase struct {
	name  string
	shell bool
	run   func(t *testing.T, s *suite)
}

// cases is the suite, in the order the subtests are reported.
var cases = []testCase{
	{"Fingerprint", false, testFingerprint},
	{"Lifecycle", false, testLifecycle},
	{"DestroyIdempotent", false, testDestroyIdempotent},
	{"ListWorkers", false, testListWorkers},
	{"RecoverAfterRestart", false, testRecoverAfterRestart},
	{"SharedWorkspace", false, testSharedWorkspace},
	{"Streaming", false, testStreaming},
	{"ExitCodes", false, testExitCodes},
	{"Stderr", false, testStderr},
	{"Env", false, testEnv},
	{"Isolation", false, testIsolation},
	{"Concurrent", false, testConcurrent},
	{"Timeout", false, testTimeout},
	{"Cancel", false, testCancel},
	{"DestroyDuringStep", false, testDestroyDuringStep},
	{"ShellErrexit", true, testShellErrexit},
	{"ShellWorkdir", true, testShellWorkdir},
	{"ShellStdinEmpty", true, testShellStdinEmpty},
	{"BackgroundChildDoesNotHang", true, testBackgroundChildDoesNotHang},
	{"DestroyKillsBackground", true, testDestroyKillsBackground},
}

// Run runs the conformance suite as parallel subtests of t.
//
// newDriver returns the driver under test. Run calls it at least once in
// each subtest, concurrently for different subtests, so it must be safe for
// concurrent use. Calls with the same t must return drivers over the same
// state (the same workspace root, the same simulated host): that is what a
// restarted agent gets, and the restart subtest calls it twice. Calls with
// different t may share a host; the suite only ever looks for its own
// workers, named with random IDs.
//
// Every worker a subtest creates is destroyed in t.Cleanup, so a failing
// subtest does not leak it.
func Run(t *testing.T, newDriver func(t *testing.T) drivers.Driver, opts Options) {
	if opts.Timeout <= 0 {
		opts.Timeout = 30 * time.Second
	}
	if opts.KillWithin <= 0 {
		opts.KillWithin = 5 * time.Second
	}
	s := &suite{newDriver: newDriver, opts: opts, lang: opts.Lang}
	if s.lang == nil {
		s.lang = Sh{}
	}
	_, s.shell = s.lang.(Sh)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			if c.shell && !s.shell {
				t.Skipf("needs POSIX sh; this driver's steps are %s (Options.Lang), not a shell", s.lang.Name())
			}
			c.run(t, s)
		})
	}
}

// ctx returns a context that ends after opts.Timeout or with the test.
func (s *suite) ctx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), s.opts.Timeout)
	t.Cleanup(cancel)
	return ctx
}

// script joins lines into a step's Run.
func script(lines ...string) string { return strings.Join(lines, "\n") }

// newID returns a worker ID unique across runs sharing a host, and valid as
// a directory, container and Kubernetes name.
func newID() string {
	b := make([]byte, 6)
	rand.Read(b)
	return "dt-" + hex.EncodeToString(b)
}

// workerConfig returns a fresh WorkerConfig with a new ID and env.
func (s *suite) workerConfig(env map[string]string) drivers.WorkerConfig {
	id := newID()
	return drivers.WorkerConfig{
		ID:         id,
		JobID:      "job-" + id,
		JobName:    "conformance",
		PipelineID: "pipeline-" + id,
		NodeID:     "drivertest",
		Image:      s.opts.Image,
		Env:        env,
		CPU:        100,
		MemoryMB:   64,
		Labels:     map[string]string{"ciplat.drivertest": "true"},
	}
}

// create creates a worker from cfg, checks its handle, and destroys it in
// t.Cleanup.
func (s *suite) create(t *testing.T, d drivers.Driver, cfg drivers.WorkerConfig) *drivers.WorkerHandle {
	t.Helper()
	h, err := d.CreateWorker(s.ctx(t), cfg)
	if err != nil {
		t.Fatalf("CreateWorker(%s): %v", cfg.ID, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), s.opts.Timeout)
		defer cancel()
		if err := d.DestroyWorker(ctx, h); err != nil {
			t.Errorf("cleanup: DestroyWorker(%s): %v", h.ID, err)
		}
	})
	if h == nil {
		t.Fatalf("CreateWorker(%s) returned a nil handle and no error", cfg.ID)
	}
	if h.ID != cfg.ID || h.Driver != d.Name() {
		t.Errorf("CreateWorker(%s) handle = {ID: %q, Driver: %q}, want {ID: %q, Driver: %q}", cfg.ID, h.ID, h.Driver, cfg.ID, d.Name())
	}
	return h
}

// newWorker creates a worker with env.
func (s *suite) newWorker(t *testing.T, d drivers.Driver, env map[string]string) *drivers.WorkerHandle {
	t.Helper()
	return s.create(t, d, s.workerConfig(env))
}

// run runs one step under ctx and returns its result and output; the
// recorder is sealed when RunStep returns.
func run(ctx context.Context, d drivers.Driver, h *drivers.WorkerHandle, step drivers.StepConfig) (drivers.StepResult, *Recorder, error) {
	rec := NewRecorder()
	res, err := d.RunStep(ctx, h, step, rec)
	rec.Seal()
	return res, rec, err
}

// mustRun runs a step that must exit 0 and returns its output.
func (s *suite) mustRun(t *testing.T, d drivers.Driver, h *drivers.WorkerHandle, step drivers.StepConfig) *Recorder {
	t.Helper()
	res, rec, err := run(s.ctx(t), d, h, step)
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("step %q: exit %d, err %v; want exit 0, no error; output:%s", step.Name, res.ExitCode, err, rec)
	}
	if res.Duration < 0 {
		t.Errorf("step %q: Duration %v < 0", step.Name, res.Duration)
	}
	return rec
}

// wantTexts fails unless the lines of stream are exactly want.
func wantTexts(t *testing.T, rec *Recorder, stream drivers.Stream, want ...string) {
	t.Helper()
	if got := rec.Texts(stream); !slices.Equal(got, want) {
		t.Errorf("%s = %q, want %q; output:%s", stream, got, want, rec)
	}
}

// envOf parses the output of Lang.PrintEnv lines into a map of the set
// variables.
func envOf(rec *Recorder) map[string]string {
	env := map[string]string{}
	for _, l := range rec.Texts(drivers.Stdout) {
		if k, v, ok := strings.Cut(l, "="); ok {
			env[k] = v
		}
	}
	return env
}

// wantNotFound fails unless err wraps drivers.ErrWorkerNotFound.
func wantNotFound(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, drivers.ErrWorkerNotFound) {
		t.Errorf("%s = %v, want an error wrapping drivers.ErrWorkerNotFound", what, err)
	}
}

// listed reports whether ListWorkers returns a handle with id.
func (s *suite) listed(t *testing.T, d drivers.Driver, id string) bool {
	t.Helper()
	hs, err := d.ListWorkers(s.ctx(t))
	if err != nil {
		t.Fatalf("ListWorkers: %v", err)
	}
	for _, h := range hs {
		if h.ID == id {
			if h.Driver != d.Name() {
				t.Errorf("ListWorkers: handle %s has Driver %q, want %q", id, h.Driver, d.Name())
			}
			return true
		}
	}
	return false
}

// outcome is how a step started with runAsync ended.
type outcome struct {
	res drivers.StepResult
	err error
	at  time.Time // when RunStep returned
}

// runAsync runs a step in a goroutine; the channel yields its outcome. The
// recorder is sealed when RunStep returns.
func runAsync(ctx context.Context, d drivers.Driver, h *drivers.WorkerHandle, step drivers.StepConfig, rec *Recorder) <-chan outcome {
	ch := make(chan outcome, 1)
	go func() {
		res, err := d.RunStep(ctx, h, step, rec)
		rec.Seal()
		ch <- outcome{res, err, time.Now()}
	}()
	return ch
}

// await waits for a step started with runAsync, failing after limit.
func await(t *testing.T, ch <-chan outcome, limit time.Duration, what string) outcome {
	t.Helper()
	select {
	case o := <-ch:
		return o
	case <-time.After(limit):
		t.Fatalf("%s: RunStep still running %v later", what, limit)
		return outcome{}
	}
}
