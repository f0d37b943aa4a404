package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ciplat/ciplat/api"
	"github.com/ciplat/ciplat/drivers"
)

// allocRunner runs one allocation: it creates the worker, runs the job's
// steps in order, ships their logs, reports progress and destroys the worker.
//
// Lifecycle: newAllocRunner → run (once, on its own goroutine) → returns after
// the worker is destroyed and the final report was delivered or given up.
//
// Reports, in order, each one UpdateAllocations call that returns before the next
// step starts (so the servers' record never runs ahead of the worker):
//
//	running / RUNNING    step 1 RUNNING
//	running / RUNNING    step N ended, step N+1 RUNNING    (one update)
//	complete / SUCCEEDED every step SUCCEEDED               (after the last)
//	failed / FAILED      step N FAILED, later steps SKIPPED, Reason
//	complete / (none)    the servers stopped it: no job state, as the
//	                     servers already cancelled the job
//	failed / FAILED      "client shut down while the job ran"
//
// Reasons: "step <name> exited <code>", "step <name> timed out after <d>",
// "job timed out after <d>", "driver: <err>". Timeouts are the spec's
// strings ("10m0s"); empty or zero means none. The step timeout bounds one
// RunStep; the job timeout bounds CreateWorker and every step.
//
// The worker is destroyed before the final report (so the servers never free
// capacity that is still in use) with a fresh ctx, whatever ended the run.
// The handle file (state.go) is written right after CreateWorker and removed
// only when the worker is destroyed and the final report delivered.
//
// A failure before the first step (unknown or unhealthy driver, CreateWorker
// error) sends the RUNNING and the FAILED update together in one call: the
// job may only reach FAILED through RUNNING.
//
// Infrastructure faults carry a cause on their FAILED report, so the servers
// reschedule the job instead of using up its retries: "create-failed" for a
// driver that is not enabled or not healthy here and for a CreateWorker
// error, "worker-lost" when the client's shutdown ended the attempt. Each step's logs are flushed
// before the update that ends the step.
//
// Concurrency: run owns every field below except these, which the client's
// reconcile (under Client.mu) and shutdown touch: stop and cancel end ctx
// (stop also marks the end as the servers' wish); the destroy watchdog
// goroutine calls DestroyWorker as soon as ctx ends, so a RunStep in flight
// returns promptly even if the driver ignores ctx.
type allocRunner struct {
	c     *Client
	alloc *api.Allocation
	job   *api.Job
	log   *slog.Logger

	ctx     context.Context // ends on stop (servers) or cancel (shutdown)
	cancel  context.CancelFunc
	stopped atomic.Bool // the servers asked for the stop (desired status stop)

	driver  drivers.Driver
	handle  *drivers.WorkerHandle
	destroy func() bool // destroys the worker once; reports success

	steps   []api.StepStatus
	pending []*api.AllocUpdate // reports not yet delivered, oldest first

	// What the reports say of the worker (Worker Manager API): the driver,
	// the driver's worker ID, the image and the worker's state.
	workerDriver, workerID, workerImage, workerState string
}

// Errors that say why a step's ctx ended.
var (
	errStepTimeout = errors.New("step timeout")
	errJobTimeout  = errors.New("job timeout")
)

func newAllocRunner(c *Client, a *api.Allocation) *allocRunner {
	ctx, cancel := context.WithCancel(context.Background())
	return &allocRunner{
		c:      c,
		alloc:  a,
		job:    a.Job,
		log:    c.log.With("alloc_id", a.ID, "job_id", a.JobID, "attempt", a.Attempt),
		ctx:    ctx,
		cancel: cancel,
	}
}

// stop ends the allocation because the servers asked to (desired stop or the
// allocation vanished). Safe to call from any goroutine, any number of times.
func (r *allocRunner) stop() {
	r.stopped.Store(true)
	r.cancel()
}

// outcome is how an attempt ended.
type outcome struct {
	clientStatus string
	jobState     string
	reason       string
	// cause marks a FAILED end as an infrastructure fault (api.Cause*).
	cause string
}

func failed(reason string) outcome {
	return outcome{clientStatus: api.AllocClientFailed, jobState: api.StateFailed, reason: reason}
}

// run runs the allocation to its end. It never panics on bad input: a job it
// cannot run is reported FAILED with the reason.
func (r *allocRunner) run() {
	defer r.cancel()
	// Shutdown of the whole client also ends this runner.
	stopWatch := context.AfterFunc(r.c.runCtx, r.cancel)
	defer stopWatch()

	if r.job == nil || r.job.Spec == nil {
		r.failEarly("allocation " + r.alloc.ID + " carries no job spec: the servers sent an incomplete allocation")
		return
	}
	r.steps = r.initialSteps()
	if !safeID(r.alloc.ID) {
		r.failEarly(fmt.Sprintf("allocation ID %q is not a safe file name", r.alloc.ID))
		return
	}
	name := r.job.Spec.Driver
	if name == "" {
		name = r.c.defaultDriver(r.job.Spec.Image)
	}
	if name == "" {
		// The scheduler placed it here because a container driver was
		// healthy; it failed since: an infrastructure fault, rescheduled
		// (not a retry of the build).
		r.faultEarly(fmt.Sprintf("job has image %q but no container driver (%s) is healthy on node %s; write driver: exec to run it on the host",
			r.job.Spec.Image, strings.Join(containerDrivers, ", "), r.c.cfg.Name), api.CauseCreateFailed)
		return
	}
	info, ok := r.c.driverHealth(name)
	switch {
	case !ok:
		r.faultEarly(fmt.Sprintf("driver %q is not enabled on node %s (enabled: %s)",
			name, r.c.cfg.Name, strings.Join(slices.Sorted(maps.Keys(r.c.cfg.Drivers)), ", ")), api.CauseCreateFailed)
		return
	case !info.Healthy:
		reason := info.Reason
		if reason == "" {
			reason = "not detected"
		}
		r.faultEarly(fmt.Sprintf("driver %q is unhealthy on node %s: %s", name, r.c.cfg.Name, reason), api.CauseCreateFailed)
		return
	}
	r.driver = r.c.cfg.Drivers[name]
	r.log = r.log.With("driver", name)
	r.workerDriver, r.workerImage = name, r.job.Spec.Image

	jobTimeout, err := parseTimeout(r.job.Spec.Timeout)
	if err != nil {
		r.failEarly(fmt.Sprintf("job timeout %q: %v", r.job.Spec.Timeout, err))
		return
	}
	stepTimeouts := make([]time.Duration, len(r.job.Spec.Steps))
	for i, s := range r.job.Spec.Steps {
		if stepTimeouts[i], err = parseTimeout(s.Timeout); err != nil {
			r.failEarly(fmt.Sprintf("step %s timeout %q: %v", r.steps[i].Name, s.Timeout, err))
			return
		}
	}

	jobCtx := r.ctx
	if jobTimeout > 0 {
		var cancel context.CancelFunc
		jobCtx, cancel = context.WithTimeoutCause(r.ctx, jobTimeout, errJobTimeout)
		defer cancel()
	}

	h, err := r.driver.CreateWorker(jobCtx, r.workerConfig(name))
	if err != nil {
		switch {
		case r.ctx.Err() != nil:
			r.finishStopped()
		case context.Cause(jobCtx) == errJobTimeout:
			r.failEarly(fmt.Sprintf("job timed out after %s", jobTimeout))
		default:
			r.faultEarly("driver: create worker: "+err.Error(), api.CauseCreateFailed)
		}
		return
	}
	r.handle = h
	r.workerID, r.workerState = h.ID, api.WorkerRunning
	r.destroy = sync.OnceValue(func() bool { return r.c.destroy(r.driver, h, r.log) })
	if err := r.c.saveHandle(&handleRecord{AllocID: r.alloc.ID, JobID: r.alloc.JobID, Attempt: r.alloc.Attempt, Driver: name, Handle: h}); err != nil {
		// Without a handle a crash would leave the worker to the orphan
		// sweep; the job itself can still run.
		r.log.Error("cannot persist the worker handle", "err", err)
	}
	// As soon as ctx ends, destroy the worker so a step in flight returns.
	stopDestroy := context.AfterFunc(r.ctx, func() { r.destroy() })
	defer stopDestroy()

	logs := newLogShipper(r.c, r.c.cfg.API.PushLogs, r.alloc, r.job)
	out := r.runSteps(jobCtx, jobTimeout, stepTimeouts, logs)

	// Logs first, then the worker, then the final word.
	flushCtx, cancel := r.boundedCtx(logFlushTimeout)
	logs.close(flushCtx)
	cancel()
	destroyed := r.destroy()
	switch {
	case r.stopped.Load():
		// Whatever the steps did, the servers ended the job first.
		r.finishStoppedDestroyed(destroyed)
	case out.clientStatus == api.AllocClientRunning:
		r.finishInterrupted(destroyed)
	default:
		r.finish(out, destroyed)
	}
}

// runSteps runs the steps in order and returns how the attempt ended; an
// outcome with client status running means ctx ended (stop or shutdown).
func (r *allocRunner) runSteps(jobCtx context.Context, jobTimeout time.Duration, stepTimeouts []time.Duration, logs *logShipper) outcome {
	spec := r.job.Spec
	if len(spec.Steps) == 0 {
		if !r.progress(r.update(api.AllocClientRunning, api.StateRunning, "")) {
			return outcome{clientStatus: api.AllocClientRunning}
		}
		return outcome{clientStatus: api.AllocClientComplete, jobState: api.StateSucceeded}
	}
	r.steps[0].State, r.steps[0].StartedAt = api.StepRunning, r.c.now()
	if !r.progress(r.update(api.AllocClientRunning, api.StateRunning, "")) {
		return outcome{clientStatus: api.AllocClientRunning}
	}
	for i, s := range spec.Steps {
		st := &r.steps[i]
		stepCtx := jobCtx
		cancel := context.CancelFunc(func() {})
		if stepTimeouts[i] > 0 {
			stepCtx, cancel = context.WithTimeoutCause(jobCtx, stepTimeouts[i], errStepTimeout)
		}
		r.log.Debug("step started", "step", st.Name)
		res, err := r.driver.RunStep(stepCtx, r.handle, drivers.StepConfig{Name: st.Name, Run: s.Run, Env: s.Env}, logs.sink(st.Name))
		cause := context.Cause(stepCtx)
		cancel()
		st.FinishedAt = r.c.now()

		var out outcome
		switch {
		case r.ctx.Err() != nil:
			return outcome{clientStatus: api.AllocClientRunning}
		case err == nil && res.ExitCode == 0:
			// A step that succeeded as its deadline passed succeeded.
			code := 0
			st.State, st.ExitCode = api.StepSucceeded, &code
		case cause == errStepTimeout:
			st.State, st.Reason = api.StepFailed, fmt.Sprintf("timed out after %s", stepTimeouts[i])
			out = failed(fmt.Sprintf("step %s timed out after %s", st.Name, stepTimeouts[i]))
		case cause == errJobTimeout:
			st.State, st.Reason = api.StepFailed, fmt.Sprintf("job timed out after %s", jobTimeout)
			out = failed(fmt.Sprintf("job timed out after %s", jobTimeout))
		case err != nil:
			st.State, st.Reason = api.StepFailed, "driver: "+err.Error()
			out = failed("driver: " + err.Error())
		default:
			code := res.ExitCode
			st.State, st.ExitCode = api.StepFailed, &code
			out = failed(fmt.Sprintf("step %s exited %d", st.Name, code))
		}
		r.log.Debug("step ended", "step", st.Name, "state", st.State, "exit_code", res.ExitCode, "err", err)

		// Followers must see every line of the step before its end.
		fctx, fcancel := r.boundedCtx(logFlushTimeout)
		if err := logs.flush(fctx); err != nil && r.ctx.Err() == nil {
			r.log.Warn("step logs not flushed before its end was reported", "step", st.Name, "err", err)
		}
		fcancel()

		if out.clientStatus != "" {
			r.skipFrom(i + 1)
			return out
		}
		if i == len(spec.Steps)-1 {
			return outcome{clientStatus: api.AllocClientComplete, jobState: api.StateSucceeded}
		}
		// Step N ended and step N+1 starts: one report.
		next := &r.steps[i+1]
		next.State, next.StartedAt = api.StepRunning, r.c.now()
		if !r.progress(r.update(api.AllocClientRunning, api.StateRunning, "")) {
			return outcome{clientStatus: api.AllocClientRunning}
		}
	}
	panic("unreachable")
}

// finish reports the attempt's end and forgets its handle once the servers
// have it and the worker is gone.
func (r *allocRunner) finish(out outcome, destroyed bool) {
	r.log.Info("allocation ended", "client_status", out.clientStatus, "job_state", out.jobState, "reason", out.reason)
	r.workerEnded(destroyed)
	u := r.update(out.clientStatus, out.jobState, out.reason)
	u.Cause = out.cause
	if r.report(u) && destroyed {
		r.c.removeHandle(r.alloc.ID)
	}
}

// finishInterrupted ends an attempt the client's shutdown interrupted: it is
// reported FAILED with cause worker-lost (after any progress not yet
// delivered) so the servers reschedule it per the job's reschedule policy.
func (r *allocRunner) finishInterrupted(destroyed bool) {
	for i := range r.steps {
		if r.steps[i].State == api.StepRunning {
			r.steps[i].State, r.steps[i].Reason, r.steps[i].FinishedAt = api.StepFailed, "interrupted", r.c.now()
			r.skipFrom(i + 1)
			break
		}
	}
	out := failed("client shut down while the job ran")
	out.cause = api.CauseWorkerLost
	r.finish(out, destroyed)
}

// finishStopped completes an allocation the servers stopped before its
// worker existed.
func (r *allocRunner) finishStopped() {
	if !r.stopped.Load() {
		// Shutdown before the worker existed: the job never ran here.
		r.report(r.earlyFailure("client shut down before the job started", api.CauseWorkerLost)...)
		return
	}
	r.finishStoppedDestroyed(true)
}

// finishStoppedDestroyed completes an allocation the servers stopped. Progress
// not yet delivered is dropped: the job is already CANCELLED, so a RUNNING
// report would be an illegal move and could sink the completion with it.
func (r *allocRunner) finishStoppedDestroyed(destroyed bool) {
	r.log.Info("allocation stopped by the servers")
	r.pending = nil
	u := &api.AllocUpdate{AllocID: r.alloc.ID, ClientStatus: api.AllocClientComplete}
	if r.workerState != "" {
		r.workerEnded(destroyed)
		u.Driver, u.WorkerID, u.Image, u.WorkerState = r.workerDriver, r.workerID, r.workerImage, r.workerState
	}
	if r.report(u) && destroyed {
		r.c.removeHandle(r.alloc.ID)
	}
}

// failEarly reports a failure of the job itself (its spec) before any
// worker existed: the servers retry it per its retry policy.
func (r *allocRunner) failEarly(reason string) {
	r.log.Warn("allocation failed before it started", "reason", reason)
	r.report(r.earlyFailure(reason, "")...)
}

// faultEarly reports an infrastructure fault before the first step (no
// usable driver here, the worker could not be created): FAILED with the
// cause, so the servers reschedule the job (preferring another node)
// instead of using up its retries.
func (r *allocRunner) faultEarly(reason, cause string) {
	r.log.Warn("allocation could not start on this node", "reason", reason, "cause", cause)
	r.report(r.earlyFailure(reason, cause)...)
}

// earlyFailure is RUNNING then FAILED (with every step SKIPPED), so the job
// takes only legal moves, SCHEDULED → RUNNING → FAILED, in one Raft entry.
// cause, when set, marks the failure an infrastructure fault.
func (r *allocRunner) earlyFailure(reason, cause string) []*api.AllocUpdate {
	if r.steps == nil && r.job != nil && r.job.Spec != nil {
		r.steps = r.initialSteps()
	}
	running := r.update(api.AllocClientRunning, api.StateRunning, "")
	r.skipFrom(0)
	r.workerState = api.WorkerFailed // no worker was created
	end := r.update(api.AllocClientFailed, api.StateFailed, reason)
	end.Cause = cause
	return []*api.AllocUpdate{running, end}
}

// workerEnded records the worker's end for the next report: terminated
// when it was destroyed, failed when it could not be (it may linger until
// the orphan sweep).
func (r *allocRunner) workerEnded(destroyed bool) {
	if destroyed {
		r.workerState = api.WorkerTerminated
	} else {
		r.workerState = api.WorkerFailed
	}
}

// report delivers a final report after any update not yet delivered, in one
// call. It retries until the servers take them or the client is gone (then
// it tries for finalReportTimeout more); it returns whether they were
// delivered.
func (r *allocRunner) report(ups ...*api.AllocUpdate) bool {
	ctx, cancel := r.c.reportCtx()
	defer cancel()
	return r.send(ctx, ups)
}

// progress delivers an update during the run like report, but gives up as
// soon as the runner's ctx ends: the update then stays pending and goes out
// with the final report.
func (r *allocRunner) progress(u *api.AllocUpdate) bool {
	ctx, cancel := r.c.reportCtx()
	defer cancel()
	stop := context.AfterFunc(r.ctx, cancel)
	defer stop()
	return r.send(ctx, []*api.AllocUpdate{u})
}

func (r *allocRunner) send(ctx context.Context, ups []*api.AllocUpdate) bool {
	r.pending = append(r.pending, ups...)
	if err := r.c.sendUpdates(ctx, r.pending); err != nil {
		r.log.Warn("allocation report not delivered", "updates", len(r.pending), "err", err)
		return false
	}
	r.pending = nil
	return true
}

// update builds a report with a copy of the current step states.
func (r *allocRunner) update(clientStatus, jobState, reason string) *api.AllocUpdate {
	steps := make([]api.StepStatus, len(r.steps))
	for i, s := range r.steps {
		if s.ExitCode != nil {
			code := *s.ExitCode
			s.ExitCode = &code
		}
		steps[i] = s
	}
	return &api.AllocUpdate{AllocID: r.alloc.ID, ClientStatus: clientStatus, JobState: jobState, Reason: reason, Steps: steps,
		Driver: r.workerDriver, WorkerID: r.workerID, Image: r.workerImage, WorkerState: r.workerState}
}

// initialSteps names every step PENDING. A step's name is the spec's, or
// "step-<n>" (1-based) when the spec leaves it empty.
func (r *allocRunner) initialSteps() []api.StepStatus {
	out := make([]api.StepStatus, len(r.job.Spec.Steps))
	for i, s := range r.job.Spec.Steps {
		name := s.Name
		if name == "" && i < len(r.job.Steps) {
			name = r.job.Steps[i].Name
		}
		if name == "" {
			name = "step-" + strconv.Itoa(i+1)
		}
		out[i] = api.StepStatus{Name: name, State: api.StepPending}
	}
	return out
}

// skipFrom marks steps i.. that have not run SKIPPED.
func (r *allocRunner) skipFrom(i int) {
	for ; i < len(r.steps); i++ {
		if r.steps[i].State == api.StepPending || r.steps[i].State == "" {
			r.steps[i].State = api.StepSkipped
		}
	}
}

// workerConfig describes the worker for this attempt; its Env is the job's
// with ciplat's attempt variables over it (drivers.AttemptEnv).
func (r *allocRunner) workerConfig(driver string) drivers.WorkerConfig {
	jobEnv := r.job.Env
	if jobEnv == nil {
		jobEnv = r.job.Spec.Env
	}
	res := r.alloc.Resources
	if res == (api.Resources{}) {
		res = r.job.Spec.Resources
	}
	cfg := drivers.WorkerConfig{
		ID:         r.alloc.ID,
		JobID:      r.job.ID,
		JobName:    r.job.Name,
		PipelineID: r.alloc.PipelineID,
		NodeID:     r.c.nodeID,
		Image:      r.job.Spec.Image,
		CPU:        res.CPU,
		MemoryMB:   res.MemoryMB,
		Labels: map[string]string{
			"ciplat.alloc_id":    r.alloc.ID,
			"ciplat.job_id":      r.job.ID,
			"ciplat.job_name":    r.job.Name,
			"ciplat.pipeline_id": r.alloc.PipelineID,
			"ciplat.node_id":     r.c.nodeID,
			"ciplat.attempt":     strconv.Itoa(r.alloc.Attempt),
		},
	}
	cfg.Env = drivers.AttemptEnv(cfg, r.alloc.Attempt, jobEnv)
	return cfg
}

// boundedCtx is for waits that must end: at most d, and at most
// finalReportTimeout once the client shuts down.
func (r *allocRunner) boundedCtx(d time.Duration) (context.Context, context.CancelFunc) {
	ctx, cancel := r.c.reportCtx()
	ctx, cancel2 := context.WithTimeout(ctx, d)
	return ctx, func() { cancel2(); cancel() }
}

// destroy destroys a worker with a fresh ctx bounded by destroyTimeout and
// reports whether it is gone.
func (c *Client) destroy(d drivers.Driver, h *drivers.WorkerHandle, log *slog.Logger) bool {
	ctx, cancel := context.WithTimeout(context.Background(), destroyTimeout)
	defer cancel()
	if err := d.DestroyWorker(ctx, h); err != nil && !errors.Is(err, drivers.ErrWorkerNotFound) {
		log.Error("cannot destroy worker", "worker", h.ID, "err", err)
		return false
	}
	return true
}

// parseTimeout reads an api duration ("10m0s"); empty or zero means none.
func parseTimeout(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, errors.New("want a Go duration such as 30s or 10m")
	}
	if d < 0 {
		return 0, errors.New("must not be negative")
	}
	return d, nil
}
