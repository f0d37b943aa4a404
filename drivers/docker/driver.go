// Package docker is the driver that runs each job in its own Docker
// container, through the official Docker client with the API version
// negotiated (engines from 20.10 on).
//
// One worker is one container, named ciplat-<worker ID>, created from the
// job's image and kept alive by a long-running entrypoint that does nothing
// (see keepAlive), plus one named volume, ciplat-<worker ID>-ws, mounted at
// the workspace (/workspace unless Config.Workspace says otherwise). Both
// carry the labels ciplat.managed=true, ciplat.alloc_id, ciplat.job_id and
// ciplat.node_id, by which ListWorkers finds them after a crash. Each step is
// one `docker exec` of `sh -e -c <run>` in the workspace, with stdout and
// stderr demultiplexed and streamed line by line. DestroyWorker force-removes
// the container and the volume.
//
// Every call to the engine goes through a circuit breaker: after
// Config.BreakerThreshold consecutive failures to reach the engine it opens,
// calls fail at once with an error wrapping ErrEngineUnavailable and
// Fingerprint reports the driver unhealthy with the reason, until a single
// probe after Config.BreakerCooldown succeeds. Idempotent calls (inspect,
// list, remove, kill) are retried with exponential backoff when the failure
// is transient; creating a container or an exec is never retried blindly.
package docker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/docker/docker/client"

	"github.com/ciplat/ciplat/drivers"
	"github.com/ciplat/ciplat/drivers/internal/breaker"
	"github.com/ciplat/ciplat/drivers/internal/workerset"
)

// Defaults of Config's zero values.
const (
	defaultWorkspace        = "/workspace"
	defaultKillGrace        = 2 * time.Second
	defaultCallTimeout      = 30 * time.Second
	defaultPullTimeout      = 15 * time.Minute
	defaultPullStall        = 30 * time.Second
	defaultBreakerThreshold = 5
	defaultBreakerCooldown  = 10 * time.Second
	defaultRetries          = 2
	defaultRetryBackoff     = 100 * time.Millisecond
)

// ErrEngineUnavailable is wrapped by the errors of calls refused while the
// circuit breaker is open: the engine failed too often in a row, and the
// driver stops asking until a probe succeeds.
var ErrEngineUnavailable = errors.New("docker engine unavailable")

// Config configures a Docker Driver. The zero value talks to the engine
// named by the environment (DOCKER_HOST, DOCKER_CERT_PATH, ...) or the
// default socket, with the defaults below.
type Config struct {
	// Host is the engine's address ("unix:///var/run/docker.sock",
	// "tcp://10.0.0.5:2376"). Empty means DOCKER_HOST or the default.
	Host string
	// NodeID, when set, limits ListWorkers to the workers labelled with
	// this node (ciplat.node_id), so agents sharing one engine do not reap
	// each other's containers. CreateWorker labels a worker with
	// WorkerConfig.NodeID, which the agent sets to the same value.
	NodeID string
	// Workspace is where the workspace volume is mounted in the container
	// and where steps start. Empty means /workspace.
	Workspace string
	// Network is the network containers join. Empty means the engine's
	// default bridge.
	Network string
	// Logger receives the driver's own messages (not step output). Nil
	// discards them.
	Logger *slog.Logger
	// KillGrace is how long a step whose context ended may take to exit
	// after SIGTERM before its processes get SIGKILL. Zero means 2s.
	// DestroyWorker does not wait: it removes the container at once.
	KillGrace time.Duration
	// CallTimeout bounds each short engine call (inspect, create, remove).
	// A call that takes longer counts as a failure of the engine. Zero
	// means 30s.
	CallTimeout time.Duration
	// PullTimeout bounds pulling a missing image; PullStall aborts a pull
	// that reports no progress for that long (an unreachable registry).
	// Zero means 15m and 30s.
	PullTimeout time.Duration
	PullStall   time.Duration
	// BreakerThreshold is how many consecutive engine failures open the
	// circuit; BreakerCooldown how long it stays open before one probe is
	// let through. Zero means 5 and 10s.
	BreakerThreshold int
	BreakerCooldown  time.Duration
	// Retries is how many times an idempotent call is retried after a
	// transient failure, waiting RetryBackoff, then twice that, and so on.
	// Zero means 2 and 100ms; a negative Retries means none.
	Retries      int
	RetryBackoff time.Duration
	// Now is the breaker's clock. Nil means time.Now.
	Now func() time.Time
	// AuthFile is a docker config.json whose "auths" hold registry
	// credentials for pulls (see loadRegistryAuth). Empty: anonymous
	// pulls (the engine's own login does not apply to API pulls).
	AuthFile string
}

// Driver runs jobs in Docker containers. Create it with New and Close it
// when done. It is safe for concurrent use, as drivers.Driver requires.
//
// Its state is the engine's: containers and volumes found by name and label.
// In memory it keeps only the steps in flight (so DestroyWorker can stop
// them) and the breaker, so a new Driver over the same engine carries on
// where an old one stopped. Steps of one worker must run one at a time, as
// the drivers.Driver contract says: when a step's shell exits, every other
// process in the container is killed (see RunStep).
type Driver struct {
	cfg    Config
	log    *slog.Logger
	eng    *engine
	closer interface{ Close() error }
	seen   atomic.Bool  // the engine has answered at least once
	auth   registryAuth // from Config.AuthFile; read-only

	workers  workerset.Set[struct{}] // steps in flight, by worker ID
	mu       sync.Mutex              // guards removing
	removing map[string]bool         // workers DestroyWorker removes in the background; guarded by mu

	background sync.WaitGroup // background removals; Close waits for them

	pullMu sync.Mutex
	pulls  map[string]*pull // pulls in flight, by image reference
}

var _ drivers.Driver = (*Driver)(nil)

// New returns a Docker driver. It does not contact the engine: Fingerprint
// says whether the engine answers. It fails only when cfg or the
// environment names an engine address the client cannot use, or
// Config.AuthFile cannot be read.
func New(cfg Config) (*Driver, error) {
	opts := []client.Opt{client.FromEnv, client.WithAPIVersionNegotiation()}
	if cfg.Host != "" {
		opts = append(opts, client.WithHost(cfg.Host))
	}
	var auth registryAuth
	if cfg.AuthFile != "" {
		var err error
		if auth, err = loadRegistryAuth(cfg.AuthFile); err != nil {
			return nil, err
		}
	}
	cli, err := client.NewClientWithOpts(opts...)
	if err != nil {
		return nil, fmt.Errorf("docker: engine address: %w: check Config.Host or DOCKER_HOST", err)
	}
	d := newDriver(cfg, cli, cli)
	d.auth = auth
	return d, nil
}

// newDriver applies cfg's defaults around an engine API.
func newDriver(cfg Config, api client.APIClient, closer interface{ Close() error }) *Driver {
	if cfg.Workspace == "" {
		cfg.Workspace = defaultWorkspace
	}
	if cfg.KillGrace <= 0 {
		cfg.KillGrace = defaultKillGrace
	}
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = defaultCallTimeout
	}
	if cfg.PullTimeout <= 0 {
		cfg.PullTimeout = defaultPullTimeout
	}
	if cfg.PullStall <= 0 {
		cfg.PullStall = defaultPullStall
	}
	if cfg.BreakerThreshold <= 0 {
		cfg.BreakerThreshold = defaultBreakerThreshold
	}
	if cfg.BreakerCooldown <= 0 {
		cfg.BreakerCooldown = defaultBreakerCooldown
	}
	switch {
	case cfg.Retries == 0:
		cfg.Retries = defaultRetries
	case cfg.Retries < 0:
		cfg.Retries = 0
	}
	if cfg.RetryBackoff <= 0 {
		cfg.RetryBackoff = defaultRetryBackoff
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("driver", "docker")
	return &Driver{
		cfg: cfg,
		log: log,
		eng: &engine{
			api: api,
			Caller: breaker.Caller{
				Breaker:   breaker.New(cfg.BreakerThreshold, cfg.BreakerCooldown, cfg.Now, ErrEngineUnavailable),
				Transient: transient,
				Retries:   cfg.Retries,
				Backoff:   cfg.RetryBackoff,
				Timeout:   cfg.CallTimeout,
				Peer:      "engine",
				Log:       log,
			},
		},
		closer:   closer,
		removing: make(map[string]bool),
		pulls:    make(map[string]*pull),
	}
}

// Close waits for the background removals DestroyWorker started (each is
// bounded by 4×CallTimeout), then releases the client's connections. Other
// containers are left alone.
func (d *Driver) Close() error {
	d.background.Wait()
	if d.closer == nil {
		return nil
	}
	return d.closer.Close()
}

// Name returns "docker".
func (d *Driver) Name() string { return "docker" }

// Fingerprint reports the driver healthy when the engine answers a ping
// through the breaker; Version is the engine's version. While the breaker
// is open it reports unhealthy with the reason and does not call the
// engine; once the cooldown has passed, its ping is the half-open probe.
// Detected is true once the engine has answered, so a node whose engine
// went away reports "detected, unhealthy" rather than "no docker".
func (d *Driver) Fingerprint(ctx context.Context) drivers.Fingerprint {
	fp := drivers.Fingerprint{Attributes: map[string]string{}}
	if host := d.eng.api.DaemonHost(); host != "" {
		fp.Attributes["driver.docker.host"] = host
	}
	err := d.eng.Call(ctx, "ping", true, func(ctx context.Context) error {
		_, err := d.eng.api.Ping(ctx)
		return err
	})
	if err != nil {
		fp.Detected = d.seen.Load()
		fp.Reason = fmt.Sprintf("docker: engine at %s does not answer: %v: start the Docker daemon or point DOCKER_HOST at it", d.eng.api.DaemonHost(), err)
		if errors.Is(err, ErrEngineUnavailable) {
			fp.Reason = fmt.Sprintf("docker: %v", err)
		}
		return fp
	}
	d.seen.Store(true)
	fp.Detected = true
	var v struct{ version, api, os, arch, kernel string }
	err = d.eng.Call(ctx, "version", true, func(ctx context.Context) error {
		sv, err := d.eng.api.ServerVersion(ctx)
		v.version, v.api, v.os, v.arch, v.kernel = sv.Version, sv.APIVersion, sv.Os, sv.Arch, sv.KernelVersion
		return err
	})
	if err != nil {
		fp.Reason = fmt.Sprintf("docker: engine answers pings but not /version: %v", err)
		return fp
	}
	fp.Healthy = true
	fp.Version = v.version
	fp.Attributes["driver.docker.version"] = v.version
	fp.Attributes["driver.docker.api_version"] = d.eng.api.ClientVersion()
	fp.Attributes["driver.docker.server_api_version"] = v.api
	fp.Attributes["driver.docker.os"] = v.os
	fp.Attributes["driver.docker.arch"] = v.arch
	if v.kernel != "" {
		fp.Attributes["driver.docker.kernel"] = v.kernel
	}
	return fp
}
