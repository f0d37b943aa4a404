package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/remotecommand"
	utilexec "k8s.io/client-go/util/exec"
	"k8s.io/streaming/pkg/httpstream"

	"github.com/ciplat/ciplat/drivers"
	"github.com/ciplat/ciplat/drivers/internal/breaker"
	"github.com/ciplat/ciplat/drivers/internal/linewriter"
	"github.com/ciplat/ciplat/drivers/internal/workerset"
)

// killGroup is a POSIX sh function: killgroup SIG PGID sends SIG to the
// process group PGID. dash wants `kill -s SIG -- -PGID`, busybox's sh
// rejects the "--" and takes `kill -s SIG -PGID`: it tries both.
const killGroup = `killgroup() { kill -s "$1" -- "-$2" 2>/dev/null || kill -s "$1" "-$2" 2>/dev/null; }
`

// stepWrapper is what each step's exec runs, with the worker's workspace
// as $1, its control directory as $2 and the step's script as $3. It
// creates both directories (the first step of a worker does), enters the
// workspace, and runs the script under `sh -e -c` in a process group of
// its own (setsid; without setsid in the image, in the wrapper's group, and
// only the shell itself can be signalled), with stdin from /dev/null. It
// records the group's ID in $2/step.pid, so a second exec can signal the
// whole step (see stepKiller). When the script's shell exits, the rest of
// its group is killed, so a background child cannot hold the exec's output
// open. It exits with the script's status, or 128+n when signal n killed it
// (without dash's "Terminated" on the step's stderr).
const stepWrapper = killGroup + `echo ` + startMarker + `
ws=$1 ctl=$2
mkdir -p "$ws" "$ctl" && cd "$ws" || { echo "ciplat: cannot create the workspace $ws" >&2; exit 125; }
if command -v setsid >/dev/null 2>&1; then
	setsid sh -e -c "$3" </dev/null &
else
	sh -e -c "$3" </dev/null &
fi
pid=$!
echo "$pid" >"$ctl/step.pid"
wait "$pid" 2>/dev/null
rc=$?
killgroup KILL "$pid"
rm -f "$ctl/step.pid"
exit $rc`

// startMarker is the first stdout line of every step's exec, written by
// stepWrapper before anything else: it tells RunStep the exec has started
// (the API server and the kubelet answered), and never reaches the sink. An
// exec that has not started within Config.CallTimeout is abandoned, so a
// hung API server cannot hold a step before it begins.
const startMarker = "ciplat-step-started"

// stepKiller signals the running step of the control directory $1 with
// signal $2: its process group, or its shell alone when it has none.
const stepKiller = killGroup + `p=$(cat "$1/step.pid" 2>/dev/null) || exit 0
[ -n "$p" ] || exit 0
killgroup "$2" "$p" || kill -s "$2" "$p" 2>/dev/null
exit 0`

// workerCleanup kills what runs of the worker's step (control directory
// $2) and removes its workspace $1 and the control directory.
const workerCleanup = killGroup + `p=$(cat "$2/step.pid" 2>/dev/null) && [ -n "$p" ] && { killgroup KILL "$p" || kill -s KILL "$p" 2>/dev/null; }
rm -rf "$1" "$2"
exit 0`

// killWait is how long RunStep waits for a step's exec to end after
// SIGKILL before it closes the stream and gives up on it.
const killWait = 3 * time.Second

// RunStep runs step.Run as `sh -e -c` through an exec in the worker's Pod,
// in the worker's workspace, with stdin from /dev/null (see stepWrapper).
// Its environment is the container's, then the worker's env read back from
// the Pod's spec (ciplat's variables and WorkerConfig.Env), then step.Env,
// all passed by `env` on the exec's command line. Each line of stdout and
// stderr goes to sink as soon as it is complete, stamped with time.Now();
// lines over 64 KiB arrive in pieces. sink is never called after RunStep
// returns.
//
// The exit code is the exec's (the API server's status), or 128+n when
// signal n killed the step. When ctx ends, the step's process group gets
// SIGTERM, then SIGKILL after Config.KillGrace (each by a second exec), and
// RunStep returns ExitCode -1 and ctx.Err(); the worker stays usable.
// When DestroyWorker interrupts the step, or the Pod is deleted, evicted or
// fails before or while the step runs (the informer tells), RunStep returns
// ExitCode -1 and an error wrapping drivers.ErrWorkerNotFound that says why.
func (d *Driver) RunStep(ctx context.Context, h *drivers.WorkerHandle, step drivers.StepConfig, sink drivers.LogSink) (drivers.StepResult, error) {
	failedRes := drivers.StepResult{ExitCode: -1}
	if err := ctx.Err(); err != nil {
		return failedRes, err
	}
	if h == nil {
		return failedRes, errors.New("kubernetes: RunStep: nil handle")
	}
	if err := validID(h.ID); err != nil {
		return failedRes, err
	}
	if err := checkEnv(step.Env, fmt.Sprintf("env of step %q", step.Name)); err != nil {
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

	gone := func(why string) error {
		return fmt.Errorf("kubernetes: step %q: worker %s %s: %w", step.Name, h.ID, why, drivers.ErrWorkerNotFound)
	}
	if err := d.pods.synced(ctx, d.cfg.CallTimeout); err != nil {
		return failedRes, fmt.Errorf("kubernetes: step %q: %w", step.Name, err)
	}
	changes, unsubscribe := d.pods.subscribe(h.ID)
	defer unsubscribe()
	pod := d.livePod(h.ID)
	if pod == nil {
		return failedRes, gone(fmt.Sprintf("has no pod labelled %s", allocSelector(h.ID)))
	}
	if st := describe(pod); st.state != podRunning {
		return failedRes, gone(st.reason)
	}
	podName := pod.Name
	argv := append([]string{"env"}, envArgs(pod, step.Env)...)
	argv = append(argv, "sh", "-c", stepWrapper, "ciplat-step", d.workspaceDir(h.ID), d.controlDir(h.ID), step.Run)

	log := d.log.With("worker", h.ID, "step", step.Name, "pod", podName)
	start := time.Now()
	started := make(chan struct{})
	var startOnce sync.Once
	stdoutSink := drivers.LogSinkFunc(func(l drivers.LogLine) {
		// Only the stdout copy calls this, one line at a time.
		select {
		case <-started:
			sink.Emit(l)
		default:
			startOnce.Do(func() { close(started) })
			if l.Line != startMarker {
				sink.Emit(l)
			}
		}
	})
	out, errw := newSealable(linewriter.New(drivers.Stdout, stdoutSink)), newSealable(linewriter.New(drivers.Stderr, sink))
	startTimer := time.NewTimer(d.cfg.CallTimeout)
	defer startTimer.Stop()
	streamCtx, closeStream := context.WithCancel(context.WithoutCancel(ctx))
	defer closeStream()
	result := make(chan error, 1)
	go func() {
		err := d.exec(streamCtx, podName, argv, out, errw)
		// A stream whose context ended returns before its copies have:
		// seal the writers, so nothing reaches sink after RunStep returns.
		out.seal()
		errw.seal()
		result <- err
	}()
	log.Debug("step started")

	var stopErr error
	var streamErr error
wait:
	for {
		select {
		case streamErr = <-result:
			break wait
		case <-s.Killed():
			stopErr = gone("was destroyed while the step ran")
			closeStream()
			_ = streamEnd(result) // stopErr says why it was closed
			break wait
		case <-changes:
			if why := d.lost(podName); why != "" {
				stopErr = gone(why)
				d.signalStep(context.WithoutCancel(ctx), podName, h.ID, "KILL") // best effort: a real kubelet kills it anyway
				closeStream()
				_ = streamEnd(result) // closed on purpose; the caller says why
				break wait
			}
		case <-startTimer.C:
			select {
			case <-started:
				continue
			default:
			}
			err := fmt.Errorf("exec in pod %s did not start within %v", podName, d.cfg.CallTimeout)
			d.api.Breaker.Done(breaker.Failed, err)
			closeStream()
			_ = streamEnd(result) // closed on purpose; the caller says why
			return drivers.StepResult{ExitCode: -1, Duration: time.Since(start)},
				fmt.Errorf("kubernetes: step %q: %w: is the API server (or the node's kubelet) answering?", step.Name, err)
		case <-ctx.Done():
			stopErr = ctx.Err()
			if why := d.stopStep(podName, h.ID, s, changes, result, closeStream, log); why != "" {
				stopErr = gone(why)
			}
			break wait
		}
	}
	res := drivers.StepResult{ExitCode: -1, Duration: time.Since(start)}
	if stopErr == nil {
		select {
		case <-s.Killed(): // the worker went while the output closed
			stopErr = gone("was destroyed while the step ran")
		default:
		}
	}
	if stopErr != nil {
		log.Debug("step stopped", "err", stopErr)
		return res, stopErr
	}
	var exitErr utilexec.ExitError
	switch {
	case streamErr == nil:
		res.ExitCode = 0
	case errors.As(streamErr, &exitErr) && exitErr.Exited():
		res.ExitCode = exitErr.ExitStatus()
	case ctx.Err() != nil:
		return res, ctx.Err()
	case d.lost(podName) != "":
		return res, gone(d.lost(podName))
	case apierrors.IsNotFound(streamErr):
		return res, gone(fmt.Sprintf("lost its pod %s (%v)", podName, apiMessage(streamErr)))
	case apierrors.IsForbidden(streamErr):
		return res, fmt.Errorf("kubernetes: step %q: exec in pod %s: forbidden: %v: apply deploy/kubernetes/rbac.yaml (pods/exec create)", step.Name, podName, apiMessage(streamErr))
	case transient(streamErr):
		return res, fmt.Errorf("kubernetes: step %q: lost the exec stream to pod %s (did the API server stop answering? a WebSocket exec waits 61s for a heartbeat): %w", step.Name, podName, streamErr)
	default:
		return res, fmt.Errorf("kubernetes: step %q: exec in pod %s: %w", step.Name, podName, streamErr)
	}
	log.Debug("step finished", "exit_code", res.ExitCode, "duration", res.Duration)
	return res, nil
}

// sealable is a lineWriter that can be sealed: it flushes and then drops
// every later write. client-go's executor returns when its context ends
// without waiting for the goroutines that copy the streams, which may still
// write. It is safe for concurrent use.
type sealable struct {
	mu     sync.Mutex
	w      *linewriter.Writer
	sealed bool
}

func newSealable(w *linewriter.Writer) *sealable { return &sealable{w: w} }

// Write passes p to the lineWriter unless sealed; it never fails.
func (s *sealable) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.sealed {
		_, _ = s.w.Write(p) // a sink's write failure must not end the exec's copy
	}
	return len(p), nil
}

// seal flushes a pending line and drops whatever comes after.
func (s *sealable) seal() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.sealed {
		s.w.Flush()
		s.sealed = true
	}
}

// livePod returns worker id's cached Pod that is not being deleted, or nil.
func (d *Driver) livePod(id string) *corev1.Pod {
	for _, p := range d.pods.pods(id) {
		if p.DeletionTimestamp == nil {
			return p
		}
	}
	return nil
}

// lost returns why Pod name can no longer run steps, as the informer sees
// it, or "".
func (d *Driver) lost(name string) string {
	p := d.pods.pod(name)
	if p == nil {
		return fmt.Sprintf("lost its pod %s: it was deleted", name)
	}
	if st := describe(p); st.state == podGone {
		return st.reason
	}
	return ""
}

// exec runs argv in Pod name's worker container, copying its output to out
// and errw, until it ends or ctx does. It returns the stream's error: nil
// for exit 0, a utilexec.ExitError for another exit code. A failure to
// reach the API server counts against the breaker.
func (d *Driver) exec(ctx context.Context, name string, argv []string, out, errw io.Writer) error {
	// An exec is long: it must not become the breaker's half-open probe
	// (every other call would wait for it). It only runs while the circuit
	// is closed, and reports how it went.
	if st, why := d.api.Breaker.Status(); st != breaker.Closed {
		return fmt.Errorf("exec: %w: %s", ErrAPIUnavailable, why)
	}
	req := d.cs.CoreV1().RESTClient().Post().Resource("pods").Namespace(d.cfg.Namespace).Name(name).SubResource("exec").
		VersionedParams(&corev1.PodExecOptions{Container: containerName, Command: argv, Stdout: true, Stderr: true}, scheme.ParameterCodec)
	ex, err := d.executor(req.URL())
	if err != nil {
		return err
	}
	err = ex.StreamWithContext(ctx, remotecommand.StreamOptions{Stdout: out, Stderr: errw})
	var exitErr utilexec.ExitError
	if errors.As(err, &exitErr) {
		d.api.Report(ctx, nil) // the server answered
	} else {
		d.api.Report(ctx, err)
	}
	return err
}

// executor returns a WebSocket executor for u that falls back to SPDY when
// the server or a proxy cannot upgrade to WebSockets (as kubectl does).
func (d *Driver) executor(u *url.URL) (remotecommand.Executor, error) {
	spdy, err := remotecommand.NewSPDYExecutor(d.rest, "POST", u)
	if err != nil {
		return nil, fmt.Errorf("SPDY executor: %w", err)
	}
	ws, err := remotecommand.NewWebSocketExecutor(d.rest, "GET", u.String())
	if err != nil {
		return nil, fmt.Errorf("WebSocket executor: %w", err)
	}
	return remotecommand.NewFallbackExecutor(ws, spdy, func(err error) bool {
		return httpstream.IsUpgradeFailure(err) || httpstream.IsHTTPSProxyError(err)
	})
}

// stopStep stops a step whose context ended: SIGTERM to its process group,
// SIGKILL after KillGrace, and after killWait more it closes the stream and
// gives up. It returns when the step's exec has ended, and every signal
// exec too (a late one would hit the worker's next step). It returns why
// the worker went, when DestroyWorker or the Pod's end interrupted it.
func (d *Driver) stopStep(pod, id string, s *workerset.Step, changes <-chan struct{}, result <-chan error, closeStream func(), log *slog.Logger) (gone string) {
	ctx, cancel := context.WithTimeout(context.Background(), d.cfg.CallTimeout)
	defer cancel()
	var sigs sync.WaitGroup
	defer sigs.Wait()
	signal := func(sig string) {
		sigs.Go(func() { d.signalStep(ctx, pod, id, sig) })
	}
	wait := func(limit time.Duration) (ended bool) {
		t := time.NewTimer(limit)
		defer t.Stop()
		for {
			select {
			case err := <-result:
				log.Debug("the step's stream ended while stopping", "err", err)
				return true
			case <-s.Killed():
				gone = "was destroyed while the step stopped"
				closeStream()
				_ = streamEnd(result) // closed on purpose; the caller says why
				return true
			case <-changes:
				if why := d.lost(pod); why != "" {
					gone = why
					closeStream()
					_ = streamEnd(result) // closed on purpose; the caller says why
					return true
				}
			case <-t.C:
				return false
			}
		}
	}
	signal("TERM")
	if wait(d.cfg.KillGrace) {
		return gone
	}
	log.Debug("step ignored SIGTERM; killing", "grace", d.cfg.KillGrace)
	signal("KILL")
	if wait(killWait) {
		return gone
	}
	log.Warn("step's exec still open after SIGKILL; closing it", "worker", id)
	closeStream()
	_ = streamEnd(result) // closed on purpose; the caller says why
	return gone
}

// signalStep sends sig to the step running in Pod pod of worker id, by an
// exec of stepKiller, and waits for that exec. Errors are logged only.
func (d *Driver) signalStep(ctx context.Context, pod, id, sig string) {
	ctx, cancel := context.WithTimeout(ctx, d.cfg.CallTimeout)
	defer cancel()
	err := d.exec(ctx, pod, []string{"sh", "-c", stepKiller, "ciplat-kill", d.controlDir(id), sig}, io.Discard, io.Discard)
	if err != nil {
		d.log.Debug("signal step", "worker", id, "signal", sig, "err", err)
	}
}

// cleanup kills what runs of worker id's step in Pod pod and removes its
// workspace and control directories, by an exec of workerCleanup. Errors
// are logged only: deleting the Pod does the same on a real cluster.
func (d *Driver) cleanup(ctx context.Context, pod, id string) {
	ctx, cancel := context.WithTimeout(ctx, d.cfg.CallTimeout)
	defer cancel()
	err := d.exec(ctx, pod, []string{"sh", "-c", workerCleanup, "ciplat-cleanup", d.workspaceDir(id), d.controlDir(id)}, io.Discard, io.Discard)
	if err != nil {
		d.log.Debug("clean up worker", "worker", id, "err", err)
	}
}

// streamEnd waits for a stream that was told to stop and returns how it ended;
// callers that already know why they stopped it drop the error on purpose.
func streamEnd(ch <-chan error) error { return <-ch }
