package docker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/ciplat/ciplat/drivers"
	"github.com/ciplat/ciplat/drivers/internal/linewriter"
	"github.com/ciplat/ciplat/drivers/internal/workerset"
)

// killOthers is a POSIX sh function that sends signal $1 to every process
// in the container but PID 1 (the keepAlive shell) and the calling shell.
// It uses builtins only (kill, case, globbing), so it forks nothing that
// could be caught in its own sweep, and needs nothing from the image but
// sh and /proc, which Docker always mounts.
const killOthers = `ciplat_kill() {
	for p in /proc/[0-9]*; do
		p=${p#/proc/}
		case $p in 1|$$) ;; *) kill -"$1" "$p" 2>/dev/null ;; esac
	done
}
`

// stepWrapper is what each step's exec runs, with the step's script as $1:
// the script under `sh -e -c` with stdin from /dev/null, then a sweep that
// kills whatever the script left behind (`sleep 100 &` holding stdout
// would otherwise keep the exec's output open, and so the step), then the
// script's exit status, or 128+n when signal n killed it. The sweep may
// kill every process but PID 1 because steps of one worker run one at a
// time.
const stepWrapper = killOthers + `sh -e -c "$1" </dev/null
rc=$?
ciplat_kill KILL; ciplat_kill KILL
exit $rc`

// stepKiller is what RunStep execs to stop a step whose context ended:
// signal $1 to every process of the step (all but PID 1 and itself).
const stepKiller = killOthers + `ciplat_kill "$1"; [ "$1" != KILL ] || ciplat_kill KILL`

// killWait is how long RunStep waits for a step's output to close after
// SIGKILL before it kills the whole container as the last resort.
const killWait = 3 * time.Second

// RunStep runs step.Run as `sh -e -c` through an exec in the worker's
// container, in the workspace, with stdin from /dev/null. The step's
// environment is the container's (the image's, then ciplat's variables,
// then WorkerConfig.Env, see CreateWorker) with step.Env over it. Each
// line of stdout and stderr, demultiplexed, goes to sink as soon as it is
// complete, stamped with time.Now(); lines over 64 KiB arrive in pieces.
// sink is never called after RunStep returns.
//
// The exit code is the shell's (from the exec's inspect), or 128+n when a
// signal n killed it. When the shell exits, every other process in the
// container except its PID 1 is killed, so nothing a step started in the
// background outlives it or holds its output open.
//
// When ctx ends, the step's processes get SIGTERM, then SIGKILL after
// Config.KillGrace (both sent by a second exec), and RunStep returns
// ExitCode -1 and ctx.Err(); the worker stays usable. Should the step's
// output still be open killWait after that, the container itself is killed
// as the last resort, and the worker is then gone. When DestroyWorker
// interrupts a step, or the container is gone before or while it runs,
// RunStep returns ExitCode -1 and an error wrapping drivers.ErrWorkerNotFound.
func (d *Driver) RunStep(ctx context.Context, h *drivers.WorkerHandle, step drivers.StepConfig, sink drivers.LogSink) (drivers.StepResult, error) {
	failedRes := drivers.StepResult{ExitCode: -1}
	if err := ctx.Err(); err != nil {
		return failedRes, err
	}
	if h == nil {
		return failedRes, errors.New("docker: RunStep: nil handle")
	}
	if err := validID(h.ID); err != nil {
		return failedRes, err
	}
	env, err := stepEnv(step)
	if err != nil {
		return failedRes, err
	}
	if sink == nil {
		sink = drivers.LogSinkFunc(func(drivers.LogLine) {})
	}
	s, err := d.startStep(h.ID)
	if err != nil {
		return failedRes, err
	}
	defer s.Finish()

	name := containerName(h.ID)
	gone := func(why string) error {
		return fmt.Errorf("docker: step %q: worker %s %s: %w", step.Name, h.ID, why, drivers.ErrWorkerNotFound)
	}
	var execID string
	err = d.eng.Call(ctx, "create exec", false, func(ctx context.Context) error {
		resp, err := d.eng.api.ContainerExecCreate(ctx, name, container.ExecOptions{
			Cmd:          []string{"sh", "-c", stepWrapper, "ciplat-step", step.Run},
			Env:          env,
			WorkingDir:   d.cfg.Workspace,
			AttachStdout: true,
			AttachStderr: true,
		})
		execID = resp.ID
		return err
	})
	switch {
	case err == nil:
	case ctx.Err() != nil:
		return failedRes, ctx.Err()
	case cerrdefs.IsNotFound(err):
		return failedRes, gone("has no container")
	case cerrdefs.IsConflict(err): // "container is not running" / "is paused"
		return failedRes, gone(fmt.Sprintf("container is not running (%v)", err))
	default:
		return failedRes, fmt.Errorf("docker: step %q: create exec in %s: %w", step.Name, name, err)
	}
	select {
	case <-s.Killed():
		return failedRes, gone("was destroyed")
	default:
	}

	var att types.HijackedResponse
	err = d.eng.Call(ctx, "start exec", false, func(ctx context.Context) error {
		var err error
		att, err = d.eng.api.ContainerExecAttach(ctx, execID, container.ExecAttachOptions{})
		return err
	})
	switch {
	case err == nil:
	case ctx.Err() != nil:
		return failedRes, ctx.Err()
	case cerrdefs.IsNotFound(err) || cerrdefs.IsConflict(err):
		return failedRes, gone(fmt.Sprintf("went away (%v)", err))
	default:
		return failedRes, fmt.Errorf("docker: step %q: start exec in %s: %w", step.Name, name, err)
	}
	defer att.Close()
	start := time.Now()
	log := d.log.With("worker", h.ID, "step", step.Name, "exec", execID)
	log.Debug("step started")

	// One goroutine demultiplexes both streams, so sink sees one caller at
	// a time; RunStep waits for it before returning.
	read := make(chan struct{})
	var readErr error
	go func() {
		defer close(read)
		out, errw := linewriter.New(drivers.Stdout, sink), linewriter.New(drivers.Stderr, sink)
		_, readErr = stdcopy.StdCopy(out, errw, att.Reader)
		out.Flush()
		errw.Flush()
	}()

	var stopErr error
	select {
	case <-read:
	case <-s.Killed():
		stopErr = gone("was destroyed while the step ran")
		att.Close()
		<-read
	case <-ctx.Done():
		stopErr = ctx.Err()
		if d.stopStep(h.ID, s, att, read, log) {
			stopErr = gone("was destroyed while the step stopped")
		}
	}
	res := drivers.StepResult{ExitCode: -1, Duration: time.Since(start)}
	if stopErr == nil {
		select {
		case <-s.Killed(): // the container went while the output closed
			stopErr = gone("was destroyed while the step ran")
		default:
		}
	}
	if stopErr != nil {
		log.Debug("step stopped", "err", stopErr)
		return res, stopErr
	}

	code, err := d.execExitCode(ctx, execID)
	switch {
	case err == nil:
	case cerrdefs.IsNotFound(err):
		return res, gone("went away while the step ran")
	case ctx.Err() != nil:
		return res, ctx.Err()
	default:
		return res, fmt.Errorf("docker: step %q: exit code: %w", step.Name, err)
	}
	if readErr != nil {
		return res, fmt.Errorf("docker: step %q: reading its output: %w", step.Name, readErr)
	}
	res.ExitCode = code
	log.Debug("step finished", "exit_code", code, "duration", res.Duration)
	return res, nil
}

// execExitCode inspects a finished exec. Its output can close a moment
// before the engine records the exit, so a still-running exec is asked
// again, with a growing pause, for up to about two seconds.
func (d *Driver) execExitCode(ctx context.Context, execID string) (int, error) {
	pause := 2 * time.Millisecond
	for waited := time.Duration(0); ; waited += pause {
		var ins container.ExecInspect
		err := d.eng.Call(ctx, "inspect exec", true, func(ctx context.Context) error {
			var err error
			ins, err = d.eng.api.ContainerExecInspect(ctx, execID)
			return err
		})
		if err != nil {
			return -1, err
		}
		if !ins.Running {
			return ins.ExitCode, nil
		}
		if waited > 2*time.Second {
			return -1, fmt.Errorf("exec %s still running after its output closed", execID)
		}
		t := time.NewTimer(pause)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return -1, ctx.Err()
		}
		pause = min(2*pause, 100*time.Millisecond)
	}
}

// stopStep stops a step whose context ended: SIGTERM to its processes,
// SIGKILL after KillGrace, and after killWait more the container itself.
// It returns when the step's output has closed, which read tells. It
// reports true when DestroyWorker interrupted it meanwhile.
func (d *Driver) stopStep(id string, s *workerset.Step, att types.HijackedResponse, read <-chan struct{}, log *slog.Logger) (destroyed bool) {
	// The step's ctx is over; the signals go out under their own.
	ctx, cancel := context.WithTimeout(context.Background(), d.cfg.CallTimeout)
	defer cancel()
	// Every signal exec has finished before stopStep returns: a late one
	// (slow engine) would otherwise kill the worker's next step.
	var sigs sync.WaitGroup
	defer sigs.Wait()
	signal := func(sig string) {
		sigs.Add(1)
		go func() {
			defer sigs.Done()
			d.signalStep(ctx, id, sig)
		}()
	}
	wait := func(limit time.Duration) (ended bool) {
		t := time.NewTimer(limit)
		defer t.Stop()
		select {
		case <-read:
			return true
		case <-s.Killed():
			destroyed = true
			att.Close()
			<-read
			return true
		case <-t.C:
			return false
		}
	}
	signal("TERM")
	if wait(d.cfg.KillGrace) {
		return destroyed
	}
	log.Debug("step ignored SIGTERM; killing", "grace", d.cfg.KillGrace)
	signal("KILL")
	if wait(killWait) {
		return destroyed
	}
	d.log.Warn("step output still open after SIGKILL; killing its container", "worker", id)
	_ = d.eng.Call(ctx, "kill container", true, func(ctx context.Context) error {
		return d.eng.api.ContainerKill(ctx, containerName(id), "KILL")
	})
	att.Close()
	<-read
	return destroyed
}

// signalStep sends sig to every process of worker id's step, through an
// exec of stepKiller, and waits for that exec to end. Errors are logged
// only: RunStep's timers decide what happens next.
func (d *Driver) signalStep(ctx context.Context, id, sig string) {
	name := containerName(id)
	var execID string
	err := d.eng.Call(ctx, "create exec", false, func(ctx context.Context) error {
		resp, err := d.eng.api.ContainerExecCreate(ctx, name, container.ExecOptions{
			Cmd:          []string{"sh", "-c", stepKiller, "ciplat-kill", sig},
			AttachStdout: true,
			AttachStderr: true,
		})
		execID = resp.ID
		return err
	})
	if err == nil {
		var att types.HijackedResponse
		err = d.eng.Call(ctx, "start exec", false, func(ctx context.Context) error {
			var err error
			att, err = d.eng.api.ContainerExecAttach(ctx, execID, container.ExecAttachOptions{})
			return err
		})
		if err == nil {
			_, _ = io.Copy(io.Discard, att.Reader) // the killer prints nothing; EOF is its end
			att.Close()
		}
	}
	if err != nil {
		d.log.Debug("signal step", "worker", id, "signal", sig, "err", err)
	}
}
