// Package kubernetes is the driver that runs each job in its own Pod,
// through client-go, against any API server (a kubeconfig or the in-cluster
// config).
//
// One worker is one Pod in Config.Namespace, created with generateName
// ciplat-<worker ID>-, labelled ciplat.io/managed=true, ciplat.io/alloc-id,
// ciplat.io/job-id, ciplat.io/node-id and ciplat.io/pipeline-id (owner
// annotations carry the same values unabridged, and the job's name). Its
// one container, "worker", runs the job's image with a long sleep as its
// command (see keepAlive), the job's resources as requests and limits, and
// an emptyDir mounted at Config.Workspace. Each step is one exec of a small
// POSIX sh wrapper (see stepWrapper) through the API server's exec
// subresource (WebSocket, falling back to SPDY), streaming stdout and
// stderr line by line; the exit code comes from the exec's status.
//
// Two choices make the same code right on a real cluster and testable on
// kwok, whose "kubelet" runs an exec on its own host: the environment
// travels in the exec's command line (`env K=V ... sh -c WRAPPER`), read
// back from the Pod's spec, so a recovered worker has it too; and the
// workspace is a per-worker directory <Workspace>/<worker ID> that the
// first step creates and DestroyWorker removes, with the driver's control
// files (the running step's process group) in <Workspace>/.ciplat/<ID>.
// A cancelled step is killed explicitly, by a second exec that signals its
// process group, because closing an exec stream does not kill the remote
// process on a real kubelet.
//
// A shared informer, filtered by ciplat.io/managed=true (and the node label
// when Config.NodeID is set), follows the Pods: CreateWorker waits on it
// for Running, and turns Unschedulable, image pull failures and a Pod that
// fails or disappears into errors that say why; a step in flight returns
// an error wrapping drivers.ErrWorkerNotFound when its Pod is deleted,
// evicted or fails.
//
// Every short call to the API server goes through a circuit breaker (as in
// the Docker driver) and a per-call timeout: after Config.BreakerThreshold
// consecutive failures to reach it, calls fail at once with an error
// wrapping ErrAPIUnavailable and Fingerprint reports the driver unhealthy,
// until a probe after Config.BreakerCooldown succeeds.
package kubernetes

import (
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/ciplat/ciplat/drivers"
	"github.com/ciplat/ciplat/drivers/internal/breaker"
	"github.com/ciplat/ciplat/drivers/internal/workerset"
)

// Defaults of Config's zero values.
const (
	DefaultNamespace          = "ciplat"
	defaultWorkspace          = "/workspace"
	defaultKillGrace          = 2 * time.Second
	defaultCallTimeout        = 15 * time.Second
	defaultStartTimeout       = 5 * time.Minute
	defaultUnschedulableGrace = 30 * time.Second
	defaultDeleteGrace        = 5 * time.Second
	defaultBreakerThreshold   = 5
	defaultBreakerCooldown    = 10 * time.Second
	defaultRetries            = 2
	defaultRetryBackoff       = 100 * time.Millisecond
)

// ErrAPIUnavailable is wrapped by the errors of calls refused while the
// circuit breaker is open: the API server failed too often in a row, and
// the driver stops asking until a probe succeeds.
var ErrAPIUnavailable = errors.New("kubernetes API server unavailable")

// Config configures a Kubernetes Driver. The zero value uses the in-cluster
// config, or else the kubeconfig of the environment (KUBECONFIG,
// ~/.kube/config), namespace "ciplat", and the defaults below.
type Config struct {
	// Kubeconfig is the path of a kubeconfig file; its current context is
	// used. Empty means in-cluster, else KUBECONFIG or ~/.kube/config.
	Kubeconfig string
	// Rest, when set, is used instead of Kubeconfig (tests, embedding).
	Rest *rest.Config
	// Namespace is where the Pods go. Empty means "ciplat". It must exist.
	Namespace string
	// NodeID, when set, is the node label (ciplat.io/node-id) of every Pod
	// this driver creates, and limits ListWorkers (and the informer) to the
	// Pods with it, so agents sharing a namespace do not reap each other's
	// Pods. The agent sets it to its node name. Empty: Pods are labelled
	// with WorkerConfig.NodeID and every agent sees all of them.
	NodeID string
	// Workspace is where the workspace emptyDir is mounted in the Pod; each
	// worker's workspace is the directory <Workspace>/<worker ID> in it.
	// Empty means /workspace. On kwok, where execs run on its host, give a
	// directory of that host.
	Workspace string
	// NodeSelector is copied into every Pod (a node pool for CI).
	NodeSelector map[string]string
	// RunAsNonRoot sets the Pod's runAsNonRoot, so an image whose user is
	// root fails to start (CreateContainerConfigError, reported as the
	// job's error). RunAsUser sets the user. Both are off by default: most
	// CI images (golang, node, busybox) run as root. Privilege escalation
	// is always off and capabilities beyond the runtime's default dropped
	// only when RunAsNonRoot is set.
	RunAsNonRoot bool
	RunAsUser    *int64
	// Logger receives the driver's own messages. Nil discards them.
	Logger *slog.Logger
	// KillGrace is how long a cancelled step may take to exit after SIGTERM
	// before its process group gets SIGKILL. Zero means 2s.
	KillGrace time.Duration
	// CallTimeout bounds each short API call. Zero means 15s.
	CallTimeout time.Duration
	// StartTimeout bounds CreateWorker's wait for the Pod to run (image
	// pulls included). Zero means 5m.
	StartTimeout time.Duration
	// UnschedulableGrace is how long a Pod may stay Unschedulable before
	// CreateWorker gives up (a cluster autoscaler may add a node meanwhile).
	// Zero means 30s; negative means give up at once.
	UnschedulableGrace time.Duration
	// DeleteGrace is the grace period of the Pod's deletion. Zero means 5s.
	DeleteGrace time.Duration
	// BreakerThreshold and BreakerCooldown: see the package doc. Zero
	// means 5 and 10s.
	BreakerThreshold int
	BreakerCooldown  time.Duration
	// Retries is how many times an idempotent call is retried after a
	// transient failure, waiting RetryBackoff, then twice that. Zero means
	// 2 and 100ms; negative means none.
	Retries      int
	RetryBackoff time.Duration
	// Now is the breaker's clock. Nil means time.Now.
	Now func() time.Time
}

// Driver runs jobs in Kubernetes Pods. Create it with New and Close it when
// done. It is safe for concurrent use, as drivers.Driver requires.
//
// Its state is the API server's: Pods found by label. In memory it keeps
// the steps in flight (so DestroyWorker can stop them), the informer's
// cache and the breaker, so a new Driver over the same namespace carries on
// where an old one stopped. Steps of one worker run one at a time, as the
// drivers.Driver contract says.
type Driver struct {
	cfg  Config
	log  *slog.Logger
	cs   kubernetes.Interface
	rest *rest.Config
	api  *breaker.Caller // every short call to the API server
	pods *podWatch
	seen atomic.Bool // the API server has answered at least once

	workers workerset.Set[struct{}] // steps in flight, by worker ID
}

var _ drivers.Driver = (*Driver)(nil)

// New returns a Kubernetes driver. It does not contact the API server:
// Fingerprint says whether it answers. It fails only when no client
// configuration can be loaded.
func New(cfg Config) (*Driver, error) {
	rc := cfg.Rest
	if rc == nil {
		var err error
		rc, err = loadConfig(cfg.Kubeconfig)
		if err != nil {
			return nil, err
		}
	} else {
		rc = rest.CopyConfig(rc)
	}
	// Calls are bounded by contexts (CallTimeout), streams by their step:
	// a client-wide timeout would cut exec streams and watches.
	rc.Timeout = 0
	if rc.QPS == 0 {
		rc.QPS, rc.Burst = 50, 100
	}
	if rc.UserAgent == "" {
		rc.UserAgent = "ciplat-kubernetes-driver"
	}
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("kubernetes: client: %w", err)
	}
	return newDriver(cfg, cs, rc), nil
}

// loadConfig loads path, or the in-cluster config, or the environment's
// kubeconfig.
func loadConfig(path string) (*rest.Config, error) {
	if path != "" {
		rc, err := clientcmd.BuildConfigFromFlags("", path)
		if err != nil {
			return nil, fmt.Errorf("kubernetes: kubeconfig %s: %w: check -kubeconfig", path, err)
		}
		return rc, nil
	}
	if rc, err := rest.InClusterConfig(); err == nil {
		return rc, nil
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rc, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("kubernetes: not in a cluster and no usable kubeconfig (KUBECONFIG, ~/.kube/config): %w: give -kubeconfig", err)
	}
	return rc, nil
}

// newDriver applies cfg's defaults around a clientset.
func newDriver(cfg Config, cs kubernetes.Interface, rc *rest.Config) *Driver {
	if cfg.Namespace == "" {
		cfg.Namespace = DefaultNamespace
	}
	if cfg.Workspace == "" {
		cfg.Workspace = defaultWorkspace
	}
	if cfg.KillGrace <= 0 {
		cfg.KillGrace = defaultKillGrace
	}
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = defaultCallTimeout
	}
	if cfg.StartTimeout <= 0 {
		cfg.StartTimeout = defaultStartTimeout
	}
	switch {
	case cfg.UnschedulableGrace == 0:
		cfg.UnschedulableGrace = defaultUnschedulableGrace
	case cfg.UnschedulableGrace < 0:
		cfg.UnschedulableGrace = 0
	}
	if cfg.DeleteGrace <= 0 {
		cfg.DeleteGrace = defaultDeleteGrace
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
	log = log.With("driver", "kubernetes", "namespace", cfg.Namespace)
	d := &Driver{
		cfg:  cfg,
		log:  log,
		cs:   cs,
		rest: rc,
		api: &breaker.Caller{
			Breaker:   breaker.New(cfg.BreakerThreshold, cfg.BreakerCooldown, cfg.Now, ErrAPIUnavailable),
			Transient: transient,
			Retries:   cfg.Retries,
			Backoff:   cfg.RetryBackoff,
			Timeout:   cfg.CallTimeout,
			Peer:      "API server",
			Log:       log,
		},
	}
	d.pods = newPodWatch(cs, cfg.Namespace, managedSelector(cfg.NodeID), log)
	return d
}

// Close stops the informer. Pods are left alone.
func (d *Driver) Close() error {
	d.pods.stop()
	return nil
}

// Name returns "kubernetes".
func (d *Driver) Name() string { return "kubernetes" }

// Namespace returns the namespace the driver's Pods go to.
func (d *Driver) Namespace() string { return d.cfg.Namespace }
