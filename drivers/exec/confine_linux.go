//go:build linux

package exec

import (
	"fmt"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ciplat/ciplat/drivers"
)

// limiter is how this driver confines steps, chosen once per Driver (on
// first use) from Config.Limits and what the host offers. Immutable after.
type limiter struct {
	mode   string   // in effect: "cgroup-v2", "cgroup-v1", "rlimit" or "none"
	reason string   // why no cgroup is used, when one was wanted
	cg     *cgroups // set in the cgroup modes
}

// newLimiter detects cgroups as mode asks.
func newLimiter(mode, parent string) *limiter {
	switch mode {
	case LimitsOff:
		return &limiter{mode: "none"}
	case LimitsRlimit:
		return &limiter{mode: "rlimit"}
	}
	cg, err := detectCgroups(parent)
	if err != nil {
		return &limiter{mode: "none", reason: fmt.Sprintf("no cgroup per step: %v", err)}
	}
	if cg.v2 {
		return &limiter{mode: "cgroup-v2", cg: cg}
	}
	return &limiter{mode: "cgroup-v1", cg: cg}
}

// confinement is what confines one step: its cgroup and its rlimits. It
// is applied to the step's shell while the shell waits at the gate (see
// gateScript), so every process of the step is born inside. Owned by one
// RunStep.
type confinement struct {
	cg       *stepCgroup
	rlimits  map[int]uint64 // unix.RLIMIT_* → soft and hard limit
	memoryMB int
}

// confine makes the confinement of a step in worker id with cfg's
// resources. The cgroup is named w-<id>-<unique> so DestroyWorker can
// find what a dead agent left behind.
func (d *Driver) confine(id string, cfg drivers.WorkerConfig) (*confinement, error) {
	lim := d.limiter()
	c := &confinement{rlimits: map[int]uint64{}, memoryMB: cfg.MemoryMB}
	if d.noFile > 0 {
		c.rlimits[unix.RLIMIT_NOFILE] = d.noFile
	}
	if d.nProc > 0 {
		c.rlimits[unix.RLIMIT_NPROC] = d.nProc
	}
	switch {
	case lim.cg != nil:
		pids := d.pidsMax
		if pids == 0 {
			pids = defaultPidsMax
		}
		name := "w-" + id + "-" + strconv.FormatInt(time.Now().UnixNano(), 36) + "-" + strconv.FormatUint(d.stepSeq.Add(1), 36)
		sc, err := lim.cg.create(name, stepLimits{MemoryMB: cfg.MemoryMB, CPU: cfg.CPU, PidsMax: max(pids, 0)})
		if err != nil {
			return nil, fmt.Errorf("exec: %w", err)
		}
		c.cg = sc
	case lim.mode == "rlimit" && cfg.MemoryMB > 0:
		c.rlimits[unix.RLIMIT_AS] = uint64(cfg.MemoryMB) << 20
	}
	return c, nil
}

// gated reports whether the step's shell must wait at the gate for apply.
func (c *confinement) gated() bool { return c.cg != nil || len(c.rlimits) > 0 }

// apply puts process pid (the step's shell, waiting at the gate) into the
// cgroup and sets its rlimits, which its children inherit.
func (c *confinement) apply(pid int) error {
	if c.cg != nil {
		if err := c.cg.add(pid); err != nil {
			return fmt.Errorf("exec: %w", err)
		}
	}
	for res, v := range c.rlimits {
		if err := unix.Prlimit(pid, res, &unix.Rlimit{Cur: v, Max: v}, nil); err != nil {
			return fmt.Errorf("exec: set rlimit %d=%d on the step: %w", res, v, err)
		}
	}
	return nil
}

// killAll kills every process left in the step's cgroup, including those
// that left its process group.
func (c *confinement) killAll() {
	if c.cg != nil {
		c.cg.kill()
	}
}

// oomKilled reports whether the kernel killed a process of the step for
// exceeding its memory limit.
func (c *confinement) oomKilled() bool { return c.cg != nil && c.cg.oomKills() > 0 }

// release kills what is left in the cgroup and removes it.
func (c *confinement) release() error {
	if c.cg == nil {
		return nil
	}
	c.cg.kill()
	return c.cg.remove()
}

// reapCgroups kills and removes the step cgroups of worker id that an
// earlier agent left behind (it died mid-step); DestroyWorker calls it once
// the worker's own steps have returned.
func (d *Driver) reapCgroups(id string) error {
	lim := d.limiter()
	if lim.cg == nil {
		return nil
	}
	var err error
	for _, sc := range lim.cg.leftovers("w-" + id + "-") {
		sc.kill()
		if rerr := sc.remove(); rerr != nil {
			err = rerr
		}
	}
	return err
}

// hasCgroup reports whether steps get a cgroup each.
func (l *limiter) hasCgroup() bool { return l.cg != nil }
