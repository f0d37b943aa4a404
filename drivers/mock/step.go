package mock

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/ciplat/ciplat/drivers"
)

// RunStep interprets step.Run one line at a time, in the calling goroutine,
// and returns the exit code it reaches (0 at the end of the script). Lines
// are trimmed; empty lines and lines starting with '#' are skipped. The
// language:
//
//	echo TEXT               TEXT to stdout
//	echoerr TEXT            TEXT to stderr
//	exit N                  end the step with exit code N
//	sleep DURATION          wait ("250ms", "2s"; a bare number is seconds)
//	fail-until-attempt N    exit 1 unless env CIPLAT_ATTEMPT >= N (unset: 1)
//	printenv NAME           "NAME=value" to stdout, or "NAME unset"
//	write FILE TEXT         set workspace file FILE to TEXT
//	cat FILE                FILE's content to stdout; exit 1 if missing
//
// Anything else is a no-op, like a command that succeeds silently. A
// malformed argument (`exit x`) writes a message to stderr and exits 2, as
// a shell would. The environment is built as the exec driver builds it:
// CI=true and the CIPLAT_* variables, then the worker's env, then the
// step's, later entries winning; CIPLAT_WORKSPACE is a fictional path.
//
// When ctx ends, RunStep stops before the next line (or at once in a sleep)
// and returns ExitCode -1 and ctx.Err(). When DestroyWorker interrupts it, it
// returns ExitCode -1 and an error wrapping drivers.ErrWorkerNotFound.
func (d *Driver) RunStep(ctx context.Context, h *drivers.WorkerHandle, step drivers.StepConfig, sink drivers.LogSink) (drivers.StepResult, error) {
	failed := drivers.StepResult{ExitCode: -1}
	if err := ctx.Err(); err != nil {
		return failed, err
	}
	if h == nil {
		return failed, errors.New("mock: RunStep: nil handle")
	}
	if sink == nil {
		sink = drivers.LogSinkFunc(func(drivers.LogLine) {})
	}
	w, s, ok := d.host.workers.Start(h.ID)
	if !ok {
		return failed, fmt.Errorf("mock: worker %s: %w", h.ID, drivers.ErrWorkerNotFound)
	}
	stepCtx, cancel := context.WithCancelCause(ctx)
	go func() { // DestroyWorker stops the step through its context
		select {
		case <-s.Killed():
			cancel(errDestroyed)
		case <-stepCtx.Done():
		}
	}()
	env := stepEnv(w.cfg, step)
	d.running.Add(1)
	defer func() {
		cancel(nil)
		// Counters first: DestroyWorker returns once the step is finished,
		// and a test may read Stats right after.
		d.running.Add(-1)
		d.steps.Add(1)
		s.Finish()
	}()

	start := d.now()
	r := &interp{d: d, w: w, ctx: stepCtx, sink: sink, env: env}
	code := r.run(step.Run)
	res := drivers.StepResult{ExitCode: code, Duration: d.now().Sub(start)}
	if stepCtx.Err() != nil {
		res.ExitCode = -1
		if err := ctx.Err(); err != nil {
			return res, err
		}
		return res, fmt.Errorf("mock: step %q interrupted: worker %s destroyed: %w", step.Name, h.ID, drivers.ErrWorkerNotFound)
	}
	return res, nil
}

// stepEnv merges a step's environment: drivers.WorkerEnv (ciplat's
// variables, then the worker's env), then the step's.
func stepEnv(cfg drivers.WorkerConfig, step drivers.StepConfig) map[string]string {
	env := drivers.WorkerEnv(cfg, workspacePath(cfg.ID))
	for k, v := range step.Env {
		env[k] = v
	}
	return env
}

// interp runs one step's script.
type interp struct {
	d    *Driver
	w    *worker
	ctx  context.Context // the step's: ends on cancel and on DestroyWorker
	sink drivers.LogSink
	env  map[string]string
}

// run interprets script and returns its exit code; the caller checks ctx
// to tell a stopped step from one that ended.
func (r *interp) run(script string) int {
	for n, line := range strings.Split(script, "\n") {
		if r.ctx.Err() != nil {
			return -1
		}
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		verb, arg, _ := strings.Cut(line, " ")
		arg = strings.TrimSpace(arg)
		if code, done := r.command(n+1, verb, arg); done {
			return code
		}
	}
	return 0
}

// command runs one line; done says the script ends here with code.
func (r *interp) command(n int, verb, arg string) (code int, done bool) {
	switch verb {
	case "echo":
		r.emit(drivers.Stdout, arg)
	case "echoerr":
		r.emit(drivers.Stderr, arg)
	case "exit":
		c, err := strconv.Atoi(arg)
		if err != nil {
			return r.syntax(n, "exit: want an integer exit code, got %q", arg)
		}
		return c, true
	case "sleep":
		dur, err := parseDuration(arg)
		if err != nil {
			return r.syntax(n, "sleep: want a duration like 2s or 250ms, got %q", arg)
		}
		if err := r.d.sleep(r.ctx, dur); err != nil {
			return -1, true
		}
	case "fail-until-attempt":
		want, err := strconv.Atoi(arg)
		if err != nil {
			return r.syntax(n, "fail-until-attempt: want an integer attempt, got %q", arg)
		}
		attempt := 1
		if a, err := strconv.Atoi(r.env[drivers.EnvAttempt]); err == nil {
			attempt = a
		}
		if attempt < want {
			r.emit(drivers.Stderr, fmt.Sprintf("mock: attempt %d fails until attempt %d", attempt, want))
			return 1, true
		}
	case "printenv":
		if v, ok := r.env[arg]; ok {
			r.emit(drivers.Stdout, arg+"="+v)
		} else {
			r.emit(drivers.Stdout, arg+" unset")
		}
	case "write":
		name, text, _ := strings.Cut(arg, " ")
		if name == "" {
			return r.syntax(n, "write: want a file name and text")
		}
		r.w.mu.Lock()
		r.w.files[name] = strings.TrimSpace(text)
		r.w.mu.Unlock()
	case "cat":
		r.w.mu.Lock()
		text, ok := r.w.files[arg]
		r.w.mu.Unlock()
		if !ok {
			r.emit(drivers.Stderr, fmt.Sprintf("cat: %s: No such file or directory", arg))
			return 1, true
		}
		r.emit(drivers.Stdout, text)
	}
	return 0, false
}

// syntax reports a malformed line on stderr and ends the step with 2.
func (r *interp) syntax(n int, format string, args ...any) (int, bool) {
	r.emit(drivers.Stderr, fmt.Sprintf("mock: line %d: ", n)+fmt.Sprintf(format, args...))
	return 2, true
}

// emit sends one line to the sink, stamped now.
func (r *interp) emit(s drivers.Stream, line string) {
	r.sink.Emit(drivers.LogLine{Time: r.d.now(), Stream: s, Line: line})
}

// parseDuration parses a Go duration, or a bare number of seconds.
func parseDuration(s string) (time.Duration, error) {
	if d, err := time.ParseDuration(s); err == nil {
		if d < 0 {
			return 0, errors.New("negative duration")
		}
		return d, nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f < 0 || f > 1e9 {
		return 0, errors.New("not a duration")
	}
	return time.Duration(f * float64(time.Second)), nil
}
