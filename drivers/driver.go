// Package drivers defines how a client runs a job: a Driver creates one
// ephemeral worker per job attempt, runs the job's steps in it in order, and
// destroys it. Implementations live in sub-packages: exec (local
// processes), docker (a container per job), kubernetes (a Pod per job), mock
// (tests, simulation) and plugin (external drivers over hashicorp/go-plugin);
// drivertest is the conformance suite they all pass, and drivers/internal
// holds what they share (worker bookkeeping, the API breaker, the output
// line splitter). It also builds the CI and CIPLAT_* variables every step
// gets (WorkerEnv, AttemptEnv). This package imports nothing of the
// project, so a plugin author needs only it.
package drivers

import (
	"context"
	"errors"
	"time"
)

// Driver runs jobs in ephemeral workers.
//
// Lifecycle, per job attempt: Fingerprint (any time) → CreateWorker →
// RunStep for each step, in order → DestroyWorker. After a client restart,
// RecoverWorker checks a handle the client persisted (steps that were
// running are not re-attached: the old agent was their only reader), and
// ListWorkers finds workers the client no longer knows (orphans to
// destroy).
//
// Concurrency: one Driver value serves many jobs at once; every method must be
// safe for concurrent use on different workers. For one worker the client
// calls methods one at a time, except DestroyWorker, which may be called while
// RunStep is in flight (cancel) and must make that RunStep return promptly
// with an error wrapping ErrWorkerNotFound. DestroyWorker is idempotent.
// Cancelling ctx of RunStep kills the step (the whole process tree) and
// returns ctx's error; the worker stays usable.
//
// Every implementation asserts `var _ drivers.Driver = (*Driver)(nil)` and
// passes the conformance suite in drivers/drivertest, which checks these
// rules against the real thing (an external driver through its plugin).
type Driver interface {
	// Name is the driver's name as jobs and nodes know it ("exec", "docker").
	Name() string
	// Fingerprint reports whether the driver can run work on this host now.
	Fingerprint(ctx context.Context) Fingerprint
	// CreateWorker makes the worker for one job attempt: its workspace and,
	// for container drivers, its container or Pod.
	CreateWorker(ctx context.Context, cfg WorkerConfig) (*WorkerHandle, error)
	// RunStep runs one step in the worker, sending each output line to sink as
	// it is produced, and returns the step's exit code. A non-zero exit code is
	// a result, not an error; err is for failures to run the step at all.
	//
	// The step's stdin is empty, and the step ends when its shell exits, even
	// if a background child still holds stdout open. sink is never called
	// after RunStep returns. On a worker that is gone, or when DestroyWorker
	// interrupts the step, RunStep returns an error wrapping
	// ErrWorkerNotFound.
	RunStep(ctx context.Context, h *WorkerHandle, step StepConfig, sink LogSink) (StepResult, error)
	// DestroyWorker stops anything still running in the worker and removes it
	// and its workspace. Destroying a worker that is gone returns nil. When
	// it returns, nothing of the job runs any more and the worker is gone
	// for RunStep, RecoverWorker and ListWorkers; a driver may finish
	// removing storage (a stopped container, a volume) in the background,
	// provided that its Close waits for that and that whatever a crash
	// leaves behind is still listed by a new driver's ListWorkers.
	DestroyWorker(ctx context.Context, h *WorkerHandle) error
	// RecoverWorker checks that a worker created before a client restart is
	// still there; an error wrapping ErrWorkerNotFound when it is not. A
	// recovered worker runs steps as before, with its WorkerConfig's env.
	RecoverWorker(ctx context.Context, h *WorkerHandle) error
	// ListWorkers lists the workers this driver owns on this host (a
	// cluster driver: those labelled with its node), live or not, so that
	// every orphan can be destroyed.
	ListWorkers(ctx context.Context) ([]*WorkerHandle, error)
}

// ErrWorkerNotFound is returned when a handle names a worker that is gone.
var ErrWorkerNotFound = errors.New("worker not found")

// Fingerprint is a driver's health on this host.
type Fingerprint struct {
	Detected   bool              `json:"detected"`
	Healthy    bool              `json:"healthy"`
	Reason     string            `json:"reason,omitempty"`
	Version    string            `json:"version,omitempty"`
	Attributes map[string]string `json:"attributes,omitempty"`
}

// WorkerConfig is what a driver needs to create one job attempt's worker.
type WorkerConfig struct {
	// ID is unique per job attempt (the allocation ID); drivers name and label
	// the worker with it.
	ID         string            `json:"id"`
	JobID      string            `json:"job_id"`
	JobName    string            `json:"job_name"`
	PipelineID string            `json:"pipeline_id"`
	NodeID     string            `json:"node_id"`
	Image      string            `json:"image,omitempty"`
	Env        map[string]string `json:"env,omitempty"`
	CPU        int               `json:"cpu"`       // millicores
	MemoryMB   int               `json:"memory_mb"` // MiB
	Labels     map[string]string `json:"labels,omitempty"`
}

// WorkerHandle names a created worker. It is plain data so the client can
// persist it and hand it back to RecoverWorker after a restart.
type WorkerHandle struct {
	ID     string            `json:"id"`
	Driver string            `json:"driver"`
	JobID  string            `json:"job_id,omitempty"`
	State  map[string]string `json:"state,omitempty"`
}

// StepConfig is one step to run in a worker.
//
// A step's environment is, later entries winning: the driver's base (exec:
// PATH and HOME; a container: its image's env), then WorkerEnv (CI=true,
// CIPLAT_JOB_ID, CIPLAT_JOB_NAME, CIPLAT_PIPELINE_ID and CIPLAT_WORKSPACE,
// the workspace path as the step sees it, then WorkerConfig.Env, where the
// client puts the job's env and CIPLAT_ALLOC_ID and CIPLAT_ATTEMPT: see
// AttemptEnv), then Env. The agent's own environment does not leak into
// steps.
type StepConfig struct {
	Name string `json:"name"`
	// Run is the shell script, run with `sh -e -c` in the workspace.
	Run string `json:"run"`
	// Env is merged over the worker's env for this step only.
	Env map[string]string `json:"env,omitempty"`
}

// StepResult is how a step ended.
type StepResult struct {
	ExitCode int           `json:"exit_code"`
	Duration time.Duration `json:"duration"`
}

// Stream names where a log line came from.
type Stream string

// The two output streams.
const (
	Stdout Stream = "stdout"
	Stderr Stream = "stderr"
)

// LogLine is one line of step output, without its trailing newline.
type LogLine struct {
	Time   time.Time `json:"time"`
	Stream Stream    `json:"stream"`
	Line   string    `json:"line"`
}

// LogSink receives a step's output lines. Drivers may call Emit from two
// goroutines at once (stdout and stderr), so implementations must be safe for
// concurrent use; lines of one stream arrive in order.
type LogSink interface {
	Emit(LogLine)
}

// LogSinkFunc adapts a function to LogSink.
type LogSinkFunc func(LogLine)

// Emit calls f.
func (f LogSinkFunc) Emit(l LogLine) { f(l) }
