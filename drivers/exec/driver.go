// Package exec is the driver that runs steps as local processes, without
// isolation beyond a workspace directory and a process group per step. It
// is the driver for trusted runners and for developing ciplat itself.
//
// Layout under Config.Root:
//
//	<Root>/<worker ID>/             the workspace (0700): cwd and HOME of every step
//	<Root>/.workers/<worker ID>.json what the worker was created with (0600), so a
//	                                restarted agent can list, recover and run on it
//
// Each step runs as `sh -e -c <run>` in its own process group, with a minimal
// environment (see RunStep). A step's processes do not outlive it: when the
// shell exits, whatever it left running in its process group is killed, so a
// background child holding stdout open (`sleep 100 &`) cannot hang the step.
// Processes that leave the group on purpose (setsid, daemons) escape this and
// DestroyWorker's kill; only a cgroup or a container would catch them.
package exec

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	osexec "os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"github.com/ciplat/ciplat/drivers"
)

// defaultKillGrace is how long a step gets between SIGTERM and SIGKILL when
// its context ends.
const defaultKillGrace = 2 * time.Second

// Config configures an exec Driver.
type Config struct {
	// Root is where workspaces live, e.g. <data-dir>/workspaces. Two Driver
	// values with the same Root see the same workers (that is how a
	// restarted agent finds them); two agents must not share a Root.
	Root string
	// Logger receives the driver's own messages (not step output). Nil
	// discards them.
	Logger *slog.Logger
	// KillGrace is how long a step whose context ended may take to exit
	// after SIGTERM before its process group gets SIGKILL. Zero means 2s.
	// DestroyWorker does not wait: it sends SIGKILL at once.
	KillGrace time.Duration
}

// Driver runs steps as local processes. Create it with New. It is safe for
// concurrent use, as drivers.Driver requires; its only in-memory state is the
// set of steps in flight, so a new Driver over the same Root carries on where
// an old one stopped (except that it cannot kill the old one's steps).
type Driver struct {
	root      string
	log       *slog.Logger
	killGrace time.Duration

	mu      sync.Mutex
	workers map[string]*worker // by ID; only workers touched since New
}

var _ drivers.Driver = (*Driver)(nil)

// New returns an exec driver. It does not touch the disk; Fingerprint says
// whether cfg is usable.
func New(cfg Config) *Driver {
	root := cfg.Root
	if root != "" {
		if abs, err := filepath.Abs(root); err == nil {
			root = abs
		}
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	grace := cfg.KillGrace
	if grace <= 0 {
		grace = defaultKillGrace
	}
	return &Driver{
		root:      root,
		log:       log.With("driver", "exec"),
		killGrace: grace,
		workers:   make(map[string]*worker),
	}
}

// Name returns "exec".
func (d *Driver) Name() string { return "exec" }

// Fingerprint reports the driver detected when `sh` is on PATH, and healthy
// when Root is also writable (it is created if missing). Version is
// GOOS/GOARCH, the platform steps run on.
func (d *Driver) Fingerprint(ctx context.Context) drivers.Fingerprint {
	fp := drivers.Fingerprint{
		Version: runtime.GOOS + "/" + runtime.GOARCH,
		Attributes: map[string]string{
			"driver.exec.os":   runtime.GOOS,
			"driver.exec.arch": runtime.GOARCH,
		},
	}
	sh, err := osexec.LookPath("sh")
	if err != nil {
		fp.Reason = fmt.Sprintf("exec: no sh on PATH (%v): install a POSIX shell or fix the agent's PATH", err)
		return fp
	}
	fp.Detected = true
	fp.Attributes["driver.exec.sh"] = sh
	if err := d.checkRoot(); err != nil {
		fp.Reason = err.Error()
		return fp
	}
	fp.Attributes["driver.exec.root"] = d.root
	fp.Healthy = true
	return fp
}

// checkRoot makes sure Root exists and a file can be created in it.
func (d *Driver) checkRoot() error {
	if d.root == "" {
		return errors.New("exec: Config.Root is empty: set the directory where workspaces live")
	}
	if err := os.MkdirAll(d.metaDir(), 0o700); err != nil {
		return fmt.Errorf("exec: workspace root %s is not usable: %w", d.root, err)
	}
	f, err := os.CreateTemp(d.root, ".fingerprint-*")
	if err != nil {
		return fmt.Errorf("exec: workspace root %s is not writable: %w", d.root, err)
	}
	_ = os.Remove(f.Name())
	if err := f.Close(); err != nil {
		return fmt.Errorf("exec: workspace root %s is not writable: %w", d.root, err)
	}
	return nil
}
