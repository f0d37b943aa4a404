package exec

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	osexec "os/exec"
	"sync"
	"time"

	"github.com/ciplat/ciplat/drivers"
)

// drainTimeout is how long RunStep waits for the step's output pipes to
// close after its process group is gone. Only a process that left the group
// (setsid, a daemon) can hold them longer; its later output is lost.
const drainTimeout = 2 * time.Second

// RunStep runs step.Run as `sh -e -c` in the worker's workspace, in a new
// process group, with stdin from /dev/null and this environment, later
// entries winning:
//
//	PATH (the agent's), HOME=<workspace>, TMPDIR (the agent's, if set)
//	CI=true, CIPLAT_JOB_ID, CIPLAT_JOB_NAME, CIPLAT_PIPELINE_ID, CIPLAT_WORKSPACE
//	the worker's WorkerConfig.Env
//	step.Env
//
// Nothing else of the agent's environment leaks into steps. Each line of
// stdout and stderr goes to sink as soon as it is complete, stamped with
// time.Now(); lines over 64 KiB arrive in pieces. sink may be called from
// two goroutines at once and is never called after RunStep returns.
//
// The exit code is the shell's, or 128+n when a signal n killed it. When
// the shell exits, anything it left running in its process group is
// killed. When ctx ends, the group gets SIGTERM, then SIGKILL after
// Config.KillGrace, and RunStep returns ExitCode -1 and ctx.Err(). When
// DestroyWorker interrupts it, the group gets SIGKILL at once and RunStep
// returns ExitCode -1 and an error wrapping drivers.ErrWorkerNotFound, as it
// does for a worker that is gone before the step starts.
func (d *Driver) RunStep(ctx context.Context, h *drivers.WorkerHandle, step drivers.StepConfig, sink drivers.LogSink) (drivers.StepResult, error) {
	failed := drivers.StepResult{ExitCode: -1}
	if err := ctx.Err(); err != nil {
		return failed, err
	}
	meta, running, err := d.startStep(ctx, h)
	if err != nil {
		return failed, err
	}
	defer d.finishStep(h.ID, running)
	if err := d.checkWorkspace(h.ID); err != nil {
		return failed, err
	}
	if sink == nil {
		sink = drivers.LogSinkFunc(func(drivers.LogLine) {})
	}

	ws := d.workspace(h.ID)
	env, err := stepEnv(ws, meta.Config, step)
	if err != nil {
		return failed, err
	}
	sh, err := osexec.LookPath("sh")
	if err != nil {
		return failed, fmt.Errorf("exec: step %q: no sh on PATH: %w", step.Name, err)
	}

	cmd := osexec.Command(sh, "-e", "-c", step.Run)
	cmd.Dir = ws
	cmd.Env = env
	setProcessGroup(cmd)
	out, err := startWithPipes(cmd)
	if err != nil {
		if d.checkWorkspace(h.ID) != nil {
			return failed, fmt.Errorf("exec: worker %s: %w", h.ID, drivers.ErrWorkerNotFound)
		}
		return failed, fmt.Errorf("exec: step %q: start sh: %w", step.Name, err)
	}
	start := time.Now()
	log := d.log.With("worker", h.ID, "step", step.Name, "pid", cmd.Process.Pid)
	log.Debug("step started")

	var readers sync.WaitGroup
	for i, stream := range []drivers.Stream{drivers.Stdout, drivers.Stderr} {
		r := out[i]
		readers.Go(func() {
			err := readLines(r, maxLineBytes, func(line string) {
				sink.Emit(drivers.LogLine{Time: time.Now(), Stream: stream, Line: line})
			})
			if err != nil && !errors.Is(err, os.ErrClosed) { // ErrClosed: drainPipes gave up
				log.Warn("reading step output failed", "stream", stream, "err", err)
			}
		})
	}

	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	var waitErr, stopErr error
	destroyed := fmt.Errorf("exec: step %q interrupted: worker %s destroyed: %w", step.Name, h.ID, drivers.ErrWorkerNotFound)
	select {
	case waitErr = <-waited:
	case <-running.kill:
		stopErr = destroyed
		killGroup(cmd.Process)
		waitErr = <-waited
	case <-ctx.Done():
		stopErr = ctx.Err()
		terminateGroup(cmd.Process)
		select {
		case waitErr = <-waited:
		case <-running.kill: // DestroyWorker does not wait for the grace
			killGroup(cmd.Process)
			waitErr = <-waited
		case <-time.After(d.killGrace):
			log.Debug("step ignored SIGTERM; killing", "grace", d.killGrace)
			killGroup(cmd.Process)
			waitErr = <-waited
		}
	}
	// The shell is gone. Whatever it left behind in its group goes too.
	// (The group ID cannot be reused while any member lives, and the
	// kernel hands out PIDs cyclically, so this cannot hit a stranger.)
	killGroup(cmd.Process)
	drainPipes(&readers, out, log)

	res := drivers.StepResult{ExitCode: -1, Duration: time.Since(start)}
	if stopErr != nil {
		log.Debug("step stopped", "err", stopErr)
		return res, stopErr
	}
	var exitErr *osexec.ExitError
	if waitErr != nil && !errors.As(waitErr, &exitErr) {
		return res, fmt.Errorf("exec: step %q: wait: %w", step.Name, waitErr)
	}
	res.ExitCode = exitCode(cmd.ProcessState)
	log.Debug("step finished", "exit_code", res.ExitCode, "duration", res.Duration)
	return res, nil
}

// startWithPipes starts cmd with its stdout and stderr on fresh pipes and
// returns their read ends. The pipes are *os.File, so the child writes to
// them directly and cmd.Wait never waits for a copying goroutine; the
// caller reads them and must close them (drainPipes does).
func startWithPipes(cmd *osexec.Cmd) ([2]*os.File, error) {
	var out [2]*os.File
	var w [2]*os.File
	for i := range out {
		r, wr, err := os.Pipe()
		if err != nil {
			closeAll(out[:i]...)
			closeAll(w[:i]...)
			return out, err
		}
		out[i], w[i] = r, wr
	}
	cmd.Stdout, cmd.Stderr = w[0], w[1]
	err := cmd.Start()
	closeAll(w[:]...) // the child has its copies
	if err != nil {
		closeAll(out[:]...)
		return out, err
	}
	return out, nil
}

// drainPipes waits for the readers to reach EOF, which they do once every
// process holding a write end has exited. A process that escaped the kill
// may hold one for ever: after drainTimeout the read ends are closed, which
// ends the readers. Either way the read ends are closed on return and no
// reader is left running.
func drainPipes(readers *sync.WaitGroup, out [2]*os.File, log *slog.Logger) {
	done := make(chan struct{})
	go func() { readers.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(drainTimeout):
		log.Warn("step output still open after its process group was killed; a process left the group and its further output is dropped")
		closeAll(out[:]...)
		<-done
	}
	closeAll(out[:]...)
}

// closeAll closes the non-nil files, ignoring errors.
func closeAll(fs ...*os.File) {
	for _, f := range fs {
		if f != nil {
			_ = f.Close()
		}
	}
}
