package drivertest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/ciplat/ciplat/drivers"
)

// testSharedWorkspace: a file one step writes, the next step of the job reads.
func testSharedWorkspace(t *testing.T, s *suite) {
	d := s.newDriver(t)
	h := s.newWorker(t, d, nil)
	s.mustRun(t, d, h, drivers.StepConfig{Name: "write", Run: s.lang.WriteFile("shared.txt", "from-step-1")})
	rec := s.mustRun(t, d, h, drivers.StepConfig{Name: "read", Run: s.lang.ReadFile("shared.txt")})
	wantTexts(t, rec, drivers.Stdout, "from-step-1")
}

// testStreaming: lines reach the sink while the step runs, each stream in
// order, with non-decreasing timestamps. The step writes its lines and then
// blocks; the test waits for the last line through the sink (no sleeping),
// checks the step is still running, and only then cancels it.
func testStreaming(t *testing.T, s *suite) {
	const n = 50
	d := s.newDriver(t)
	h := s.newWorker(t, d, nil)
	var lines, wantOut, wantErr []string
	for i := 1; i <= n; i++ {
		out, errl := fmt.Sprintf("out-%d", i), fmt.Sprintf("err-%d", i)
		lines = append(lines, s.lang.Echo(drivers.Stdout, out), s.lang.Echo(drivers.Stderr, errl))
		wantOut, wantErr = append(wantOut, out), append(wantErr, errl)
	}
	lines = append(lines, s.lang.Echo(drivers.Stdout, "ready"), s.lang.Sleep(s.opts.Timeout*4), s.lang.Echo(drivers.Stdout, "never"))
	wantOut = append(wantOut, "ready")

	ctx, cancel := context.WithCancel(s.ctx(t))
	defer cancel()
	rec := NewRecorder()
	done := runAsync(ctx, d, h, drivers.StepConfig{Name: "stream", Run: script(lines...)}, rec)
	if err := rec.WaitLine(s.ctx(t), drivers.Stdout, "ready"); err != nil {
		t.Fatalf("waiting for the step's output while it runs: %v; output:%s", err, rec)
	}
	select {
	case o := <-done:
		t.Fatalf("step returned (exit %d, err %v) while it should block; output:%s", o.res.ExitCode, o.err, rec)
	default:
	}
	// The last stderr line may still be on its way; wait for it too.
	if err := rec.WaitLine(s.ctx(t), drivers.Stderr, wantErr[n-1]); err != nil {
		t.Fatalf("waiting for stderr: %v; output:%s", err, rec)
	}
	// Everything the step wrote before the cancel, exactly; what a shell
	// writes as it is killed (busybox ash's "Terminated" when its child
	// got the SIGTERM first) may follow, after the cancel only.
	wantTexts(t, rec, drivers.Stdout, wantOut...)
	wantTexts(t, rec, drivers.Stderr, wantErr...)
	cancel()
	o := await(t, done, s.opts.KillWithin, "cancelled streaming step")
	if !errors.Is(o.err, context.Canceled) {
		t.Errorf("RunStep after cancel: exit %d, err %v; want context.Canceled", o.res.ExitCode, o.err)
	}
	for stream, want := range map[drivers.Stream][]string{drivers.Stdout: wantOut, drivers.Stderr: wantErr} {
		if got := rec.Texts(stream); !slices.Equal(got[:min(len(got), len(want))], want) {
			t.Errorf("%s after the cancel = %q, want %q then only what the step wrote as it was killed; output:%s", stream, got, want, rec)
		}
	}
	last := map[drivers.Stream]drivers.LogLine{}
	for _, l := range rec.Lines() {
		if l.Time.IsZero() {
			t.Errorf("line %q has no timestamp", l.Line)
		}
		if p, ok := last[l.Stream]; ok && l.Time.Before(p.Time) {
			t.Errorf("%s line %q stamped %v, before the previous line %q at %v", l.Stream, l.Line, l.Time, p.Line, p.Time)
		}
		last[l.Stream] = l
	}
	if late := rec.Late(); late > 0 {
		t.Errorf("%d lines emitted after RunStep returned", late)
	}
}

// testExitCodes: the step's exit code is the result, not an error, and
// nothing after the exit runs.
func testExitCodes(t *testing.T, s *suite) {
	d := s.newDriver(t)
	h := s.newWorker(t, d, nil)
	for _, code := range []int{0, 1, 42} {
		res, rec, err := run(s.ctx(t), d, h, drivers.StepConfig{
			Name: fmt.Sprintf("exit-%d", code),
			Run: script(
				s.lang.Echo(drivers.Stdout, "before-exit"),
				s.lang.Exit(code),
				s.lang.Echo(drivers.Stdout, "after-exit"),
			),
		})
		if err != nil || res.ExitCode != code {
			t.Errorf("exit %d: got exit %d, err %v; want exit %d, no error; output:%s", code, res.ExitCode, err, code, rec)
			continue
		}
		wantTexts(t, rec, drivers.Stdout, "before-exit")
	}
}

// testStderr: stdout and stderr arrive separately, each marked.
func testStderr(t *testing.T, s *suite) {
	d := s.newDriver(t)
	h := s.newWorker(t, d, nil)
	rec := s.mustRun(t, d, h, drivers.StepConfig{Name: "streams", Run: script(
		s.lang.Echo(drivers.Stdout, "to-stdout"),
		s.lang.Echo(drivers.Stderr, "to-stderr"),
	)})
	wantTexts(t, rec, drivers.Stdout, "to-stdout")
	wantTexts(t, rec, drivers.Stderr, "to-stderr")
}

// testEnv: ciplat's variables, then the worker's env, then the step's, later
// winning; a step's env is for that step only.
func testEnv(t *testing.T, s *suite) {
	d := s.newDriver(t)
	cfg := s.workerConfig(map[string]string{"DT_WORKER": "from-worker", "DT_OVERRIDE": "from-worker", "DT_EMPTY": ""})
	h := s.create(t, d, cfg)
	names := []string{"CI", "CIPLAT_JOB_ID", "CIPLAT_JOB_NAME", "CIPLAT_PIPELINE_ID", "CIPLAT_WORKSPACE",
		"DT_WORKER", "DT_OVERRIDE", "DT_STEP", "DT_EMPTY"}
	var printenv []string
	for _, n := range names {
		printenv = append(printenv, s.lang.PrintEnv(n))
	}

	rec := s.mustRun(t, d, h, drivers.StepConfig{
		Name: "with-step-env",
		Run:  script(printenv...),
		Env:  map[string]string{"DT_OVERRIDE": "from-step", "DT_STEP": "from-step"},
	})
	got := envOf(rec)
	want := map[string]string{
		"CI":                 "true",
		"CIPLAT_JOB_ID":      cfg.JobID,
		"CIPLAT_JOB_NAME":    cfg.JobName,
		"CIPLAT_PIPELINE_ID": cfg.PipelineID,
		"DT_WORKER":          "from-worker",
		"DT_OVERRIDE":        "from-step",
		"DT_STEP":            "from-step",
		"DT_EMPTY":           "",
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("with step env: %s = %q (set: %v), want %q; output:%s", k, g, ok, v, rec)
		}
	}
	if got["CIPLAT_WORKSPACE"] == "" {
		t.Errorf("CIPLAT_WORKSPACE is empty or unset; output:%s", rec)
	}

	rec = s.mustRun(t, d, h, drivers.StepConfig{Name: "without-step-env", Run: script(printenv...)})
	got = envOf(rec)
	if got["DT_OVERRIDE"] != "from-worker" {
		t.Errorf("next step: DT_OVERRIDE = %q, want the worker's %q: a step's env must not stick", got["DT_OVERRIDE"], "from-worker")
	}
	if v, ok := got["DT_STEP"]; ok {
		t.Errorf("next step: DT_STEP = %q, want unset: a step's env must not stick", v)
	}
}

// testIsolation: two jobs share neither env nor workspace, and destroying one
// leaves the other alone.
func testIsolation(t *testing.T, s *suite) {
	d := s.newDriver(t)
	a := s.newWorker(t, d, map[string]string{"DT_JOB": "a", "DT_ONLY_A": "secret-a"})
	b := s.newWorker(t, d, map[string]string{"DT_JOB": "b"})
	s.mustRun(t, d, a, drivers.StepConfig{Name: "write", Run: s.lang.WriteFile("mine.txt", "from-a")})

	envStep := drivers.StepConfig{Name: "env", Run: script(
		s.lang.PrintEnv("DT_JOB"), s.lang.PrintEnv("DT_ONLY_A"), s.lang.PrintEnv("CIPLAT_WORKSPACE"))}
	envA := envOf(s.mustRun(t, d, a, envStep))
	envB := envOf(s.mustRun(t, d, b, envStep))
	if envA["DT_JOB"] != "a" || envB["DT_JOB"] != "b" {
		t.Errorf("DT_JOB: a sees %q, b sees %q; want a, b", envA["DT_JOB"], envB["DT_JOB"])
	}
	if v, ok := envB["DT_ONLY_A"]; ok {
		t.Errorf("job b sees job a's DT_ONLY_A=%q", v)
	}

	res, rec, err := run(s.ctx(t), d, b, drivers.StepConfig{Name: "read-other", Run: s.lang.ReadFile("mine.txt")})
	if err != nil {
		t.Fatalf("RunStep: %v", err)
	}
	if res.ExitCode == 0 || slices.Contains(rec.Texts(drivers.Stdout), "from-a") {
		t.Errorf("job b read job a's file (exit %d); output:%s", res.ExitCode, rec)
	}

	if err := d.DestroyWorker(s.ctx(t), a); err != nil {
		t.Fatalf("DestroyWorker(a): %v", err)
	}
	if err := d.RecoverWorker(s.ctx(t), b); err != nil {
		t.Errorf("RecoverWorker(b) after destroying a: %v", err)
	}
	s.mustRun(t, d, b, drivers.StepConfig{Name: "still-alive", Run: s.lang.Echo(drivers.Stdout, "ok")})
}

// testConcurrent: one driver serves several jobs at once (run with -race).
func testConcurrent(t *testing.T, s *suite) {
	const jobs = 4
	d := s.newDriver(t)
	ctx := s.ctx(t)
	var wg sync.WaitGroup
	for i := range jobs {
		wg.Go(func() {
			cfg := s.workerConfig(map[string]string{"DT_N": fmt.Sprint(i)})
			h, err := d.CreateWorker(ctx, cfg)
			if err != nil {
				t.Errorf("job %d: CreateWorker: %v", i, err)
				return
			}
			defer func() {
				if err := d.DestroyWorker(ctx, h); err != nil {
					t.Errorf("job %d: DestroyWorker: %v", i, err)
				}
			}()
			for j := range 3 {
				res, rec, err := run(ctx, d, h, drivers.StepConfig{
					Name: fmt.Sprintf("step-%d", j),
					Run:  script(s.lang.PrintEnv("DT_N"), s.lang.Echo(drivers.Stderr, fmt.Sprintf("job-%d-step-%d", i, j))),
				})
				if err != nil || res.ExitCode != 0 {
					t.Errorf("job %d step %d: exit %d, err %v; output:%s", i, j, res.ExitCode, err, rec)
					return
				}
				if got := envOf(rec)["DT_N"]; got != fmt.Sprint(i) {
					t.Errorf("job %d step %d: DT_N = %q", i, j, got)
				}
			}
		})
		wg.Go(func() {
			d.Fingerprint(ctx)
			if _, err := d.ListWorkers(ctx); err != nil {
				t.Errorf("ListWorkers during other jobs: %v", err)
			}
		})
	}
	wg.Wait()
}
