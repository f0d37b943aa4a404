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
// DestroyWorker's kill unless the step runs in a cgroup (below).
//
// Hardening (Config): steps may run as another user (User; the workspace is
// chowned to it), and a job's resources become per-step limits (Limits): on
// Linux with write access to the cgroup hierarchy each step runs in its own
// cgroup (v2, or v1 on hybrid hosts) with memory, CPU and pids limits, and
// the whole cgroup is killed when the step ends, is cancelled or times out;
// elsewhere only RLIMIT_NOFILE and RLIMIT_NPROC apply (see LimitsAuto). The
// step's shell waits at a gate until it is inside its cgroup and has its
// rlimits, so nothing it starts escapes them.
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
	"sync/atomic"
	"time"

	"github.com/ciplat/ciplat/drivers"
	"github.com/ciplat/ciplat/drivers/internal/workerset"
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

	// User runs every step as this user instead of the agent's: NAME, UID,
	// NAME:GROUP or UID:GID. Each workspace is chowned to it, and every
	// parent of Root must let it through (o+x); Fingerprint checks both
	// that the user exists and that it can reach Root. Running as another
	// user needs root (CAP_SETUID).
	User string
	// Limits is how a job's resources limit its steps: LimitsAuto (""),
	// LimitsCgroup, LimitsRlimit or LimitsOff.
	Limits string
	// CgroupParent names the directory step cgroups are made in: relative
	// to the cgroup2 mount (default "ciplat.slice"), or on cgroup v1 to the
	// agent's own cgroup of each controller (default "ciplat").
	CgroupParent string
	// PidsMax is each step's pids.max in a cgroup (processes and threads):
	// 0 means 4096, -1 no limit.
	PidsMax int
	// NoFile and NProc are RLIMIT_NOFILE and RLIMIT_NPROC of every step
	// (0: the agent's). RLIMIT_NPROC counts all processes of the step's
	// user on the host, and root ignores it; pids.max is the per-step bound.
	NoFile uint64
	NProc  uint64
}

// Driver runs steps as local processes. Create it with New. It is safe for
// concurrent use, as drivers.Driver requires; its only in-memory state is the
// set of steps in flight, so a new Driver over the same Root carries on where
// an old one stopped (except that it cannot kill the old one's steps).
type Driver struct {
	root      string
	log       *slog.Logger
	killGrace time.Duration

	user         *runAs // nil: the agent's user
	userErr      error  // Config.User could not be resolved; reported by Fingerprint and CreateWorker
	limitsMode   string
	cgroupParent string
	pidsMax      int
	noFile       uint64
	nProc        uint64

	limiterOnce sync.Once
	lim         *limiter      // set by limiterOnce; read-only after
	stepSeq     atomic.Uint64 // makes step cgroup names unique

	workers workerset.Set[workerMeta] // by ID; only workers touched since New
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
	d := &Driver{
		root:         root,
		log:          log.With("driver", "exec"),
		killGrace:    grace,
		limitsMode:   cfg.Limits,
		cgroupParent: cfg.CgroupParent,
		pidsMax:      cfg.PidsMax,
		noFile:       cfg.NoFile,
		nProc:        cfg.NProc,
	}
	if cfg.User != "" {
		d.user, d.userErr = lookupUser(cfg.User)
	}
	if err := checkLimitsMode(cfg.Limits); err != nil {
		d.userErr = errors.Join(d.userErr, err)
	}
	return d
}

// limiter returns how steps are confined, detecting it on first use (New
// does not touch the host).
func (d *Driver) limiter() *limiter {
	d.limiterOnce.Do(func() {
		d.lim = newLimiter(d.limitsMode, d.cgroupParent)
		if d.lim.reason != "" {
			d.log.Warn("steps run without memory and CPU limits", "reason", d.lim.reason, "limits", d.limitsMode)
		}
	})
	return d.lim
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
	if d.userErr != nil {
		fp.Reason = d.userErr.Error()
		return fp
	}
	if d.user != nil {
		if err := d.user.canReach(d.root); err != nil {
			fp.Reason = err.Error()
			return fp
		}
		fp.Attributes["driver.exec.user"] = d.user.name
	}
	lim := d.limiter()
	fp.Attributes["driver.exec.limits"] = lim.mode
	if d.limitsMode == LimitsCgroup && !lim.hasCgroup() {
		fp.Reason = "exec: -exec-limits cgroup: " + lim.reason
		return fp
	}
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
	if d.user != nil { // the step's user must get through Root to its workspace
		if err := os.Chmod(d.root, 0o711); err != nil {
			return fmt.Errorf("exec: workspace root %s: %w", d.root, err)
		}
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
