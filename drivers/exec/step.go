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
	"github.com/ciplat/ciplat/drivers/internal/linewriter"
)

// drainTimeout is how long RunStep waits for the step's output pipes to
// close after its process group is gone. Only a process that left the group
// (setsid, a daemon) can hold them longer; its later output is lost.
const drainTimeout = 2 * time.Second

// gateScript holds a step's shell until the driver has put it into its
// cgroup and set its rlimits (confinement.apply), then becomes the step:
// `sh -c gateScript sh RUN` reads a line from fd 3 and execs `sh -e -c RUN`
// in the same process, so nothing the step starts is born outside its
// limits. If the driver closes fd 3 without the line, the shell exits 125.
const gateScript = `read -r ciplat_gate <&3 || exit 125; exec 3<&-; exec "$0" -e -c "$1"`

// RunStep runs step.Run as `sh -e -c` in the worker's workspace, in a new
// process group, with stdin from /dev/null and this environment, later
// entries winning:
//
//	PATH (the agent's), HOME=<workspace>, TMPDIR (the agent's, if set)
//	CI=true, CIPLAT_JOB_ID, CIPLAT_JOB_NAME, CIPLAT_PIPELINE_ID, CIPLAT_WORKSPACE
//	the worker's WorkerConfig.Env
//	step.Env
//
// Nothing else of the agent's environment leaks into steps. The step runs
// as Config.User when set, and inside its cgroup and rlimits
// (Config.Limits). Each line of stdout and stderr goes to sink as soon as
// it is complete, stamped with time.Now(); lines over 64 KiB arrive in
// pieces. sink may be called from
// two goroutines at once and is never called after RunStep returns.
//
// The exit code is the shell's, or 128+n when a signal n killed it. When
// the shell exits, anything it left running in its process group is
// killed, and with a cgroup so is every process left in it. A step whose
// process the kernel killed for exceeding the memory limit gets a last
// stderr line saying so. When ctx ends, the group gets SIGTERM, then
// SIGKILL after Config.KillGrace, and RunStep returns ExitCode -1 and ctx.Err(). When
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
	defer running.Finish()
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

	conf, err := d.confine(h.ID, meta.Config)
	if err != nil {
		return failed, fmt.Errorf("exec: step %q: %w", step.Name, err)
	}
	defer func() {
		if err := conf.release(); err != nil {
			d.log.Warn("removing a step's cgroup failed", "worker", h.ID, "step", step.Name, "err", err)
		}
	}()
	cmd := osexec.Command(sh, "-e", "-c", step.Run)
	var gate *os.File // write end: closing it after a newline releases the shell
	if conf.gated() {
		var gateR *os.File
		if gateR, gate, err = os.Pipe(); err != nil {
			return failed, fmt.Errorf("exec: step %q: %w", step.Name, err)
		}
		defer closeAll(gate)
		cmd = osexec.Command(sh, "-c", gateScript, sh, step.Run)
		cmd.ExtraFiles = []*os.File{gateR}
		defer closeAll(gateR)
	}
	cmd.Dir = ws
	cmd.Env = env
	setProcessGroup(cmd, d.user)
	out, err := startWithPipes(cmd)
	if err != nil {
		if d.checkWorkspace(h.ID) != nil {
			return failed, fmt.Errorf("exec: worker %s: %w", h.ID, drivers.ErrWorkerNotFound)
		}
		return failed, fmt.Errorf("exec: step %q: start sh: %w", step.Name, err)
	}
	if gate != nil {
		err := conf.apply(cmd.Process.Pid)
		if err == nil {
			_, err = gate.Write([]byte("go\n"))
		}
		closeAll(gate, cmd.ExtraFiles[0])
		if err != nil {
			killGroup(cmd.Process)
			_ = cmd.Wait()
			closeAll(out[:]...)
			return failed, fmt.Errorf("exec: step %q: confine: %w", step.Name, err)
		}
	}
	start := time.Now()
	log := d.log.With("worker", h.ID, "step", step.Name, "pid", cmd.Process.Pid)
	log.Debug("step started")

	var readers sync.WaitGroup
	for i, stream := range []drivers.Stream{drivers.Stdout, drivers.Stderr} {
		r := out[i]
		readers.Go(func() {
			err := linewriter.New(stream, sink).CopyFrom(r)
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
	case <-running.Killed():
		stopErr = destroyed
		killGroup(cmd.Process)
		waitErr = <-waited
	case <-ctx.Done():
		stopErr = ctx.Err()
		terminateGroup(cmd.Process)
		select {
		case waitErr = <-waited:
		case <-running.Killed(): // DestroyWorker does not wait for the grace
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
	conf.killAll() // and whatever left the group, when the step has a cgroup
	drainPipes(&readers, out, log)
	if conf.oomKilled() {
		sink.Emit(drivers.LogLine{Time: time.Now(), Stream: drivers.Stderr,
			Line: fmt.Sprintf("ciplat: step killed: memory limit %d MiB exceeded (the kernel's OOM killer ended a process of the step; raise resources.memory)", conf.memoryMB)})
	}

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
