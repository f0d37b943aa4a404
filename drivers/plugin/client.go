package plugin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health/grpc_health_v1"

	"github.com/ciplat/ciplat/drivers"
)

// Defaults of Config's zero values.
const (
	defaultStartTimeout = 30 * time.Second
	defaultRestartDelay = 5 * time.Second
	defaultCancelGrace  = 30 * time.Second
)

// Config says how to run one plugin.
type Config struct {
	// Path is the plugin executable.
	Path string
	// Args are its arguments.
	Args []string
	// Env is added to its environment, which is otherwise the agent's.
	Env []string
	// StateDir is handed to the plugin in EnvStateDir, the same for every
	// start, so its workers survive a restart. Empty: the plugin decides
	// (see StateDir).
	StateDir string
	// Logger receives the host's messages about the plugin and the
	// plugin's own log (its stderr). Nil discards them.
	Logger *slog.Logger
	// StartTimeout bounds starting the plugin and its handshake. Zero
	// means 30s.
	StartTimeout time.Duration
	// RestartDelay is how long after a crash Fingerprint keeps reporting
	// the driver unhealthy before it restarts the plugin itself. Other
	// calls restart it at once. Zero means 5s.
	RestartDelay time.Duration
	// CancelGrace is how long RunStep waits for the plugin to stop a
	// step whose ctx ended before it gives up on it. Zero means 30s.
	CancelGrace time.Duration
	// Now is the clock for RestartDelay. Nil means time.Now.
	Now func() time.Time
}

// Driver is the host side of a driver plugin: a drivers.Driver whose every
// call goes to the plugin process. Create it with Open or Discover; Close
// it when done, which stops the process. It is safe for concurrent use, as
// drivers.Driver requires: calls are concurrent gRPC calls into the
// plugin, which must itself follow the contract.
//
// Lifecycle of the process: Open starts it and asks its name. When it
// exits (a crash, a kill), the calls in flight fail with ErrPluginExited;
// the next call starts a new process (Fingerprint only after
// Config.RestartDelay, reporting unhealthy until then). Close stops it for
// good.
type Driver struct {
	cfg  Config
	name string
	log  *slog.Logger

	mu       sync.Mutex
	inst     *instance // the running process; nil when none
	closed   bool
	exitedAt time.Time // when the last process was found gone
	exitErr  error     // why
	starts   int       // processes started, restarts included
}

var _ drivers.Driver = (*Driver)(nil)

// instance is one plugin process and the gRPC connection to it.
type instance struct {
	client *goplugin.Client
	conn   *grpc.ClientConn
}

// Open starts the plugin at path with the defaults and returns its driver.
func Open(path string) (*Driver, error) { return New(Config{Path: path}) }

// New starts the plugin cfg describes, checks the handshake and asks its
// name. The process keeps running until Close.
func New(cfg Config) (*Driver, error) {
	if cfg.Path == "" {
		return nil, errors.New("plugin: Config.Path is empty: name the plugin executable")
	}
	if abs, err := filepath.Abs(cfg.Path); err == nil {
		cfg.Path = abs
	}
	if cfg.StartTimeout <= 0 {
		cfg.StartTimeout = defaultStartTimeout
	}
	if cfg.RestartDelay <= 0 {
		cfg.RestartDelay = defaultRestartDelay
	}
	if cfg.CancelGrace <= 0 {
		cfg.CancelGrace = defaultCancelGrace
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d := &Driver{cfg: cfg, log: log.With("plugin", filepath.Base(cfg.Path))}
	inst, err := d.instance(true)
	if err != nil {
		return nil, err
	}
	var rep nameReply
	ctx, cancel := context.WithTimeout(context.Background(), cfg.StartTimeout)
	defer cancel()
	if err := inst.conn.Invoke(ctx, method("Name"), &empty{}, &rep); err != nil {
		_ = d.Close()
		return nil, fmt.Errorf("plugin %s: asking its name: %w", cfg.Path, err)
	}
	if rep.Name == "" {
		_ = d.Close()
		return nil, fmt.Errorf("plugin %s: its driver's Name() is empty", cfg.Path)
	}
	d.name = rep.Name
	d.log = d.log.With("driver", rep.Name)
	return d, nil
}

// Close stops the plugin process. Calls after Close fail. Workers are left
// alone.
func (d *Driver) Close() error {
	d.mu.Lock()
	inst := d.inst
	d.inst, d.closed = nil, true
	d.mu.Unlock()
	if inst != nil {
		inst.client.Kill()
	}
	return nil
}

// Name returns the name the plugin's driver gave when it was opened.
func (d *Driver) Name() string { return d.name }

// Path returns the plugin executable.
func (d *Driver) Path() string { return d.cfg.Path }

// instance returns the running plugin process, starting one when there is
// none. Unless restart is true, a process that exited less than
// RestartDelay ago is not replaced yet: the error says why.
func (d *Driver) instance(restart bool) (*instance, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil, fmt.Errorf("plugin %s: driver closed", d.cfg.Path)
	}
	if d.inst != nil && !d.inst.client.Exited() {
		return d.inst, nil
	}
	if d.inst != nil { // it exited since the last call noticed
		d.forgetLocked(d.inst, errors.New("process exited"))
	}
	if !restart && d.starts > 0 {
		if wait := d.exitedAt.Add(d.cfg.RestartDelay).Sub(d.cfg.Now()); wait > 0 {
			return nil, fmt.Errorf("plugin %s %w at %s (%v); restarting on next use or in %v",
				d.cfg.Path, ErrPluginExited, d.exitedAt.Format(time.RFC3339), d.exitErr, wait.Round(time.Millisecond))
		}
	}
	inst, err := d.start()
	if err != nil {
		return nil, err
	}
	d.inst = inst
	d.starts++
	if d.starts > 1 {
		d.log.Warn("plugin restarted", "starts", d.starts, "after", d.exitErr)
	}
	return inst, nil
}

// start launches the plugin process and connects to it.
func (d *Driver) start() (*instance, error) {
	cmd := exec.Command(d.cfg.Path, d.cfg.Args...)
	cmd.Env = append(os.Environ(), d.cfg.Env...)
	if d.cfg.StateDir != "" {
		cmd.Env = append(cmd.Env, EnvStateDir+"="+d.cfg.StateDir)
	}
	c := goplugin.NewClient(&goplugin.ClientConfig{
		HandshakeConfig:  Handshake,
		Plugins:          goplugin.PluginSet{pluginKey: &grpcPlugin{}},
		Cmd:              cmd,
		AllowedProtocols: []goplugin.Protocol{goplugin.ProtocolGRPC},
		StartTimeout:     d.cfg.StartTimeout,
		GRPCDialOptions:  []grpc.DialOption{grpc.WithDefaultCallOptions(grpc.ForceCodec(codec{}))},
		Logger:           hclogFor(d.log),
		Stderr:           io.Discard, // the plugin's stderr already reaches Logger
		SyncStdout:       io.Discard,
		SyncStderr:       io.Discard,
	})
	proto, err := c.Client()
	if err != nil {
		c.Kill()
		return nil, fmt.Errorf("plugin %s: start: %w", d.cfg.Path, err)
	}
	raw, err := proto.Dispense(pluginKey)
	if err != nil {
		c.Kill()
		return nil, fmt.Errorf("plugin %s: %w", d.cfg.Path, err)
	}
	return &instance{client: c, conn: raw.(*grpc.ClientConn)}, nil
}

// forgetLocked drops inst (killing what is left of it) and records why.
// d.mu is held.
func (d *Driver) forgetLocked(inst *instance, why error) {
	if d.inst == inst {
		d.inst = nil
		d.exitedAt, d.exitErr = d.cfg.Now(), why
		d.log.Warn("plugin process gone", "err", why)
	}
	go inst.client.Kill() // reaps the process; blocks until it is gone
}

// callFailed turns a transport error of a call to inst into the error the
// caller returns. When the plugin no longer answers a health check, the
// process is dropped (the next call starts a new one) and the error wraps
// ErrPluginExited.
func (d *Driver) callFailed(inst *instance, op string, err error) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, herr := grpc_health_v1.NewHealthClient(inst.conn).Check(ctx, &grpc_health_v1.HealthCheckRequest{Service: goplugin.GRPCServiceName})
	if herr == nil && !inst.client.Exited() {
		return fmt.Errorf("plugin %s: %s: %w", d.name, op, err)
	}
	d.mu.Lock()
	d.forgetLocked(inst, fmt.Errorf("%s: %v", op, err))
	d.mu.Unlock()
	return fmt.Errorf("plugin %s (%s): %s: %w: %v", d.name, d.cfg.Path, op, ErrPluginExited, err)
}

// invoke makes a unary call, starting the plugin if needed.
func (d *Driver) invoke(ctx context.Context, name string, req, rep any) error {
	inst, err := d.instance(true)
	if err != nil {
		return err
	}
	if err := inst.conn.Invoke(ctx, method(name), req, rep); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return d.callFailed(inst, name, err)
	}
	return nil
}

// Fingerprint asks the plugin. While the plugin is down (a crash less
// than RestartDelay ago, or it cannot start) it reports the driver
// detected but unhealthy, with the reason.
func (d *Driver) Fingerprint(ctx context.Context) drivers.Fingerprint {
	attrs := func(fp drivers.Fingerprint) drivers.Fingerprint {
		if fp.Attributes == nil {
			fp.Attributes = map[string]string{}
		}
		d.mu.Lock()
		fp.Attributes["driver.plugin.path"] = d.cfg.Path
		fp.Attributes["driver.plugin.starts"] = strconv.Itoa(d.starts)
		d.mu.Unlock()
		fp.Attributes["driver.plugin.protocol"] = strconv.Itoa(ProtocolVersion)
		return fp
	}
	down := func(err error) drivers.Fingerprint {
		return attrs(drivers.Fingerprint{Detected: true, Reason: err.Error()})
	}
	inst, err := d.instance(false)
	if err != nil {
		return down(err)
	}
	var rep fingerprintReply
	if err := inst.conn.Invoke(ctx, method("Fingerprint"), &empty{}, &rep); err != nil {
		if ctx.Err() != nil {
			return down(fmt.Errorf("plugin %s: fingerprint: %w", d.name, ctx.Err()))
		}
		return down(d.callFailed(inst, "Fingerprint", err))
	}
	return attrs(rep.Fingerprint)
}

// CreateWorker calls the plugin's CreateWorker.
func (d *Driver) CreateWorker(ctx context.Context, cfg drivers.WorkerConfig) (*drivers.WorkerHandle, error) {
	var rep handleReply
	if err := d.invoke(ctx, "CreateWorker", &createRequest{Config: cfg}, &rep); err != nil {
		return nil, err
	}
	if err := rep.Err.err(); err != nil {
		return nil, err
	}
	if rep.Handle == nil {
		return nil, fmt.Errorf("plugin %s: CreateWorker returned no handle and no error", d.name)
	}
	return rep.Handle, nil
}

// DestroyWorker calls the plugin's DestroyWorker.
func (d *Driver) DestroyWorker(ctx context.Context, h *drivers.WorkerHandle) error {
	var rep errReply
	if err := d.invoke(ctx, "DestroyWorker", &handleRequest{Handle: h}, &rep); err != nil {
		return err
	}
	return rep.Err.err()
}

// RecoverWorker calls the plugin's RecoverWorker.
func (d *Driver) RecoverWorker(ctx context.Context, h *drivers.WorkerHandle) error {
	var rep errReply
	if err := d.invoke(ctx, "RecoverWorker", &handleRequest{Handle: h}, &rep); err != nil {
		return err
	}
	return rep.Err.err()
}

// ListWorkers calls the plugin's ListWorkers.
func (d *Driver) ListWorkers(ctx context.Context) ([]*drivers.WorkerHandle, error) {
	var rep listReply
	if err := d.invoke(ctx, "ListWorkers", &empty{}, &rep); err != nil {
		return nil, err
	}
	return rep.Handles, rep.Err.err()
}

// RunStep runs the step in the plugin over a RunStep stream, passing the
// lines it sends to sink from this goroutine, in order. When ctx ends it
// asks the plugin to cancel the step and waits for its result (up to
// Config.CancelGrace), then returns ctx.Err(), so the step is stopped when
// RunStep returns and sink is not called after. When the plugin dies
// mid-step, RunStep returns an error wrapping ErrPluginExited.
func (d *Driver) RunStep(ctx context.Context, h *drivers.WorkerHandle, step drivers.StepConfig, sink drivers.LogSink) (drivers.StepResult, error) {
	failed := drivers.StepResult{ExitCode: -1}
	if err := ctx.Err(); err != nil {
		return failed, err
	}
	if sink == nil {
		sink = drivers.LogSinkFunc(func(drivers.LogLine) {})
	}
	inst, err := d.instance(true)
	if err != nil {
		return failed, err
	}
	// The stream outlives ctx by design: the cancel travels as a message.
	sctx, abort := context.WithCancel(context.WithoutCancel(ctx))
	defer abort()
	stream, err := inst.conn.NewStream(sctx, &serviceDesc.Streams[0], method("RunStep"))
	if err != nil {
		return failed, d.callFailed(inst, "RunStep", err)
	}
	start := &stepStart{Handle: h, Step: step}
	if dl, ok := ctx.Deadline(); ok {
		start.Deadline = dl
	}
	if err := stream.SendMsg(&stepMessage{Start: start}); err != nil {
		return failed, d.callFailed(inst, "RunStep", err)
	}

	events := make(chan stepEvent)
	recvErr := make(chan error, 1)
	go func() {
		for {
			var ev stepEvent
			if err := stream.RecvMsg(&ev); err != nil {
				recvErr <- err
				return
			}
			select {
			case events <- ev:
			case <-sctx.Done():
				return
			}
		}
	}()

	done := ctx.Done()
	var grace <-chan time.Time
	for {
		select {
		case ev := <-events:
			for _, l := range ev.Lines {
				sink.Emit(l)
			}
			if !ev.Done {
				continue
			}
			if err := ev.Err.err(); err != nil {
				if ctx.Err() != nil { // the plugin stopped it for us
					return ev.Result, ctx.Err()
				}
				return ev.Result, err
			}
			return ev.Result, nil
		case err := <-recvErr:
			if ctx.Err() != nil && grace != nil {
				return failed, ctx.Err()
			}
			if errors.Is(err, io.EOF) {
				err = errors.New("stream ended without a result")
			}
			return failed, d.callFailed(inst, fmt.Sprintf("RunStep %q", step.Name), err)
		case <-done:
			done = nil
			_ = stream.SendMsg(&stepMessage{Cancel: true}) // a dead stream shows in recvErr
			t := time.NewTimer(d.cfg.CancelGrace)
			defer t.Stop()
			grace = t.C
		case <-grace:
			d.log.Warn("plugin did not stop a cancelled step in time; abandoning it", "step", step.Name, "grace", d.cfg.CancelGrace)
			return failed, ctx.Err()
		}
	}
}

// hclogFor adapts a slog.Logger to the hclog.Logger go-plugin wants. The
// plugin's log lines arrive through it.
func hclogFor(l *slog.Logger) hclog.Logger {
	return hclog.FromStandardLogger(slog.NewLogLogger(l.Handler(), slog.LevelInfo), &hclog.LoggerOptions{
		Name:  "plugin",
		Level: hclog.Info,
	})
}
