//go:build linux

package exec

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cgroupControllers are the controllers a step's cgroup uses: memory
// (memory.max / memory.limit_in_bytes), pids (pids.max) and cpu (cpu.max /
// cpu.cfs_quota_us).
var cgroupControllers = []string{"memory", "pids", "cpu"}

// cgroups is where this agent makes one cgroup per step. On a cgroup v2
// host (a cgroup2 mount offering memory and pids) it is one directory,
// <mount>/<Config.CgroupParent or "ciplat.slice">, with the controllers
// enabled in its cgroup.subtree_control; v2 forbids processes in a cgroup
// that hands controllers down, so the agent's own cgroup cannot be the
// parent. On a cgroup v1 (or hybrid) host it is one directory per
// controller, nested under the agent's own cgroup of that controller
// (<mount>/<agent's path>/<Config.CgroupParent or "ciplat">), so steps stay
// inside whatever limits the agent itself runs under.
//
// A cgroups value is immutable after detectCgroups and safe for concurrent
// use; each step's stepCgroup belongs to the RunStep that made it.
type cgroups struct {
	v2      bool
	parents map[string]string // controller → parent dir; v2: every controller → the one dir
}

// detectCgroups finds the cgroup hierarchy and makes the parent
// directories. parent overrides the default parent name (relative to the
// v2 mount, or to the agent's own v1 cgroup). It fails, saying why, when
// the host has no usable memory and pids controllers or they are not
// writable (not root, or a read-only /sys/fs/cgroup).
func detectCgroups(parent string) (*cgroups, error) {
	mounts, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("read /proc/self/mountinfo: %w", err)
	}
	own, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return nil, fmt.Errorf("read /proc/self/cgroup: %w", err)
	}
	v1 := map[string]string{} // controller → mount point
	var v2mount string
	for _, line := range strings.Split(string(mounts), "\n") {
		pre, post, ok := strings.Cut(line, " - ")
		f, g := strings.Fields(pre), strings.Fields(post)
		if !ok || len(f) < 5 || len(g) < 3 {
			continue
		}
		switch g[0] {
		case "cgroup2":
			if v2mount == "" && hasAll(readFields(filepath.Join(f[4], "cgroup.controllers")), "memory", "pids") {
				v2mount = f[4]
			}
		case "cgroup":
			for _, opt := range strings.Split(g[2], ",") {
				if _, seen := v1[opt]; !seen {
					v1[opt] = f[4]
				}
			}
		}
	}
	if v2mount != "" {
		if parent == "" {
			parent = "ciplat.slice"
		}
		dir := filepath.Join(v2mount, parent)
		enabled, err := setupV2(v2mount, dir)
		if err != nil {
			return nil, err
		}
		cg := &cgroups{v2: true, parents: map[string]string{}}
		for _, c := range enabled {
			cg.parents[c] = dir
		}
		return cg, nil
	}
	if parent == "" {
		parent = "ciplat"
	}
	paths := map[string]string{} // v1 controller → the agent's cgroup path
	for _, line := range strings.Split(string(own), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) == 3 && parts[1] != "" {
			for _, c := range strings.Split(parts[1], ",") {
				paths[c] = parts[2]
			}
		}
	}
	cg := &cgroups{parents: map[string]string{}}
	for _, c := range cgroupControllers {
		mnt, ok := v1[c]
		if !ok {
			if c == "cpu" { // optional: a missing cpu controller only loses CPU limits
				continue
			}
			return nil, fmt.Errorf("no cgroup v2 mount offers memory and pids, and no cgroup v1 %s hierarchy is mounted", c)
		}
		dir := filepath.Join(mnt, paths[c], parent)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("cgroup v1 %s: %w (the agent needs write access to %s: run it as root)", c, err, mnt)
		}
		cg.parents[c] = dir
	}
	return cg, nil
}

// setupV2 makes dir under the v2 mount and enables the controllers for its
// children, from the mount's root down, one by one: memory and pids are
// required; cpu is left out when it cannot be enabled (the kernel refuses
// while real-time processes sit outside the root cgroup), which only loses
// CPU limits. It returns the controllers enabled.
func setupV2(mount, dir string) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("cgroup v2: %w (the agent needs write access to %s: run it as root)", err, mount)
	}
	chain := []string{mount}
	rel, _ := filepath.Rel(mount, dir)
	for d, part := mount, ""; rel != "."; {
		part, rel, _ = strings.Cut(rel, string(filepath.Separator))
		d = filepath.Join(d, part)
		chain = append(chain, d)
		if rel == "" {
			break
		}
	}
	var enabled []string
	for _, c := range cgroupControllers {
		var err error
		for _, d := range chain {
			if err = os.WriteFile(filepath.Join(d, "cgroup.subtree_control"), []byte("+"+c), 0); err != nil {
				err = fmt.Errorf("cgroup v2: enable %s in %s: %w", c, d, err)
				break
			}
		}
		switch {
		case err == nil:
			enabled = append(enabled, c)
		case c != "cpu":
			return nil, err
		}
	}
	return enabled, nil
}

// stepLimits are the limits of one step's cgroup; zero means none.
type stepLimits struct {
	MemoryMB int // memory.max (v2) / memory.limit_in_bytes and memsw (v1)
	CPU      int // millicores: cpu.max quota per 1s period
	PidsMax  int // pids.max: processes and threads
}

// stepCgroup is one step's cgroup: a directory per controller (one on v2).
// Owned by the RunStep that created it.
type stepCgroup struct {
	v2   bool
	dirs map[string]string // controller → dir; v2: all the same dir
}

// create makes the cgroup name (a fresh directory name) and writes lim.
func (c *cgroups) create(name string, lim stepLimits) (*stepCgroup, error) {
	sc := &stepCgroup{v2: c.v2, dirs: map[string]string{}}
	for ctrl, parent := range c.parents {
		dir := filepath.Join(parent, name)
		if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			_ = sc.remove() // best effort; the error below says what failed
			return nil, fmt.Errorf("create cgroup %s: %w", dir, err)
		}
		sc.dirs[ctrl] = dir
	}
	type setting struct{ ctrl, file, value string }
	var set []setting
	if lim.MemoryMB > 0 {
		b := strconv.FormatInt(int64(lim.MemoryMB)<<20, 10)
		if c.v2 {
			set = append(set, setting{"memory", "memory.max", b}, setting{"memory", "memory.swap.max", "0"})
		} else {
			set = append(set, setting{"memory", "memory.limit_in_bytes", b}, setting{"memory", "memory.memsw.limit_in_bytes", b})
		}
	}
	if lim.PidsMax > 0 {
		set = append(set, setting{"pids", "pids.max", strconv.Itoa(lim.PidsMax)})
	}
	if lim.CPU > 0 {
		// µs per 1s period (the kernel's longest), as the Docker driver
		// does: the same average share as a 100ms period, but a short
		// burst runs at full speed instead of stalling for most of the
		// period. The kernel's minimum quota is 1ms.
		quota := strconv.Itoa(max(lim.CPU*1000, 1000))
		if c.v2 {
			set = append(set, setting{"cpu", "cpu.max", quota + " 1000000"})
		} else {
			set = append(set, setting{"cpu", "cpu.cfs_period_us", "1000000"}, setting{"cpu", "cpu.cfs_quota_us", quota})
		}
	}
	for _, s := range set {
		dir, ok := sc.dirs[s.ctrl]
		if !ok {
			continue // v1 host without that controller
		}
		err := os.WriteFile(filepath.Join(dir, s.file), []byte(s.value), 0)
		optional := s.file == "memory.swap.max" || s.file == "memory.memsw.limit_in_bytes" // absent without swap accounting
		if err != nil && (!optional || !errors.Is(err, fs.ErrNotExist)) {
			_ = sc.remove() // best effort; the error below says what failed
			return nil, fmt.Errorf("cgroup %s: write %s=%s: %w", dir, s.file, s.value, err)
		}
	}
	return sc, nil
}

// add moves process pid into every directory of the cgroup. The step's
// shell is held at a gate until this is done, so nothing it forks can be
// left outside.
func (sc *stepCgroup) add(pid int) error {
	seen := map[string]bool{}
	for _, dir := range sc.dirs {
		if seen[dir] {
			continue
		}
		seen[dir] = true
		if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0); err != nil {
			return fmt.Errorf("move step into cgroup %s: %w", dir, err)
		}
	}
	return nil
}

// kill SIGKILLs every process in the cgroup and returns once it is empty,
// or after 5s. On v2 cgroup.kill does it atomically; on v1 (and kernels
// before 5.14) the processes are listed and killed until none is left,
// which pids.max keeps finite even for a fork bomb. Processes that left
// the step's process group (setsid, daemons) are caught here too.
func (sc *stepCgroup) kill() {
	dir := sc.dirs["pids"]
	if dir == "" {
		dir = sc.dirs["memory"]
	}
	if sc.v2 {
		_ = os.WriteFile(filepath.Join(dir, "cgroup.kill"), []byte("1"), 0)
	}
	deadline := time.Now().Add(5 * time.Second)
	for wait := time.Millisecond; time.Now().Before(deadline); wait = min(2*wait, 50*time.Millisecond) {
		pids := readFields(filepath.Join(dir, "cgroup.procs"))
		if len(pids) == 0 {
			return
		}
		for _, p := range pids {
			if pid, err := strconv.Atoi(p); err == nil && pid > 0 {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		time.Sleep(wait) // killed processes leave the cgroup once reaped
	}
}

// oomKills is how many processes the kernel's OOM killer killed in the
// cgroup because of its memory limit (v2 memory.events, v1
// memory.oom_control; kernels before 4.13 do not count them on v1).
func (sc *stepCgroup) oomKills() int {
	dir, ok := sc.dirs["memory"]
	if !ok {
		return 0
	}
	file := "memory.oom_control"
	if sc.v2 {
		file = "memory.events"
	}
	b, err := os.ReadFile(filepath.Join(dir, file))
	if err != nil {
		return 0
	}
	s := bufio.NewScanner(bytes.NewReader(b))
	for s.Scan() {
		if k, v, ok := strings.Cut(s.Text(), " "); ok && k == "oom_kill" {
			n, _ := strconv.Atoi(v)
			return n
		}
	}
	return 0
}

// remove deletes the cgroup's directories; call it after kill. A directory
// that is gone is not an error.
func (sc *stepCgroup) remove() error {
	var errs []error
	for _, dir := range sc.dirs {
		if err := os.Remove(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// leftovers returns the step cgroups whose names start with prefix: those a
// previous agent left behind when it died mid-step.
func (c *cgroups) leftovers(prefix string) []*stepCgroup {
	byName := map[string]*stepCgroup{}
	for ctrl, parent := range c.parents {
		entries, _ := os.ReadDir(parent)
		for _, e := range entries {
			if !e.IsDir() || !strings.HasPrefix(e.Name(), prefix) {
				continue
			}
			sc := byName[e.Name()]
			if sc == nil {
				sc = &stepCgroup{v2: c.v2, dirs: map[string]string{}}
				byName[e.Name()] = sc
			}
			sc.dirs[ctrl] = filepath.Join(parent, e.Name())
		}
	}
	out := make([]*stepCgroup, 0, len(byName))
	for _, sc := range byName {
		out = append(out, sc)
	}
	return out
}

// readFields returns the whitespace-separated fields of a file, none when
// it cannot be read.
func readFields(path string) []string {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	return strings.Fields(string(b))
}

// hasAll reports whether list holds every one of want.
func hasAll(list []string, want ...string) bool {
	for _, w := range want {
		found := false
		for _, l := range list {
			found = found || l == w
		}
		if !found {
			return false
		}
	}
	return true
}
