//go:build linux

package exec_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ciplat/ciplat/drivers"
	"github.com/ciplat/ciplat/drivers/drivertest"
	"github.com/ciplat/ciplat/drivers/exec"
)

// requireRoot skips a test that needs root (cgroups, another user) when the
// test is not root, and fails it under CI=true, where it must run.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true: this test needs root (cgroups, setuid), running as uid %d", os.Geteuid())
	}
	t.Skipf("needs root for cgroups and setuid (uid %d); runs under CI=true", os.Geteuid())
}

// newConfined returns a driver with cgroup limits required and a worker
// with the given resources, destroyed at cleanup.
func newConfined(t *testing.T, cfg exec.Config, wc drivers.WorkerConfig) (*exec.Driver, *drivers.WorkerHandle) {
	t.Helper()
	requireRoot(t)
	cfg.Root = filepath.Join(t.TempDir(), "workspaces")
	cfg.KillGrace = 300 * time.Millisecond
	if cfg.Limits == "" {
		cfg.Limits = exec.LimitsCgroup
	}
	if cfg.CgroupParent == "" {
		cfg.CgroupParent = "ciplat-test-" + strconv.Itoa(os.Getpid()) + "-" + t.Name()
		t.Cleanup(func() { removeCgroupParents(t, cfg.CgroupParent) })
	}
	d := exec.New(cfg)
	fp := d.Fingerprint(t.Context())
	if !fp.Healthy {
		t.Fatalf("Fingerprint = %+v, want healthy (root on Linux must get a cgroup per step)", fp)
	}
	t.Logf("limits: %s", fp.Attributes["driver.exec.limits"])
	if wc.ID == "" {
		wc.ID = "w1"
	}
	h, err := d.CreateWorker(t.Context(), wc)
	if err != nil {
		t.Fatalf("CreateWorker: %v", err)
	}
	t.Cleanup(func() {
		if err := d.DestroyWorker(context.Background(), h); err != nil {
			t.Errorf("DestroyWorker: %v", err)
		}
	})
	return d, h
}

// removeCgroupParents removes the test's parent cgroups, failing the test
// when one is not empty (a step cgroup was left behind).
func removeCgroupParents(t *testing.T, name string) {
	filepath.WalkDir("/sys/fs/cgroup", func(path string, e os.DirEntry, err error) error {
		if err != nil || !e.IsDir() {
			return nil
		}
		if e.Name() == name {
			if err := os.Remove(path); err != nil {
				t.Errorf("parent cgroup %s: %v (a step cgroup left behind?)", path, err)
			}
			return filepath.SkipDir
		}
		if strings.Count(path, "/") > 6 {
			return filepath.SkipDir
		}
		return nil
	})
}

// readWhileRunning runs a step that prints /proc/self/cgroup and returns the
// step's cgroup directory of controller ctrl, read while the step waits.
func readWhileRunning(t *testing.T, d *exec.Driver, h *drivers.WorkerHandle, read func(cgroupLines []string)) {
	t.Helper()
	rec := drivertest.NewRecorder()
	done := make(chan error, 1)
	go func() {
		_, err := d.RunStep(t.Context(), h, drivers.StepConfig{Name: "s",
			Run: "cat /proc/self/cgroup; echo END\nwhile [ ! -e release ]; do sleep 0.01; done"}, rec)
		done <- err
	}()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := rec.WaitLine(ctx, drivers.Stdout, "END"); err != nil {
		t.Fatalf("waiting for the step's cgroups: %v; output: %s", err, rec)
	}
	lines := rec.Texts(drivers.Stdout)
	read(lines[:len(lines)-1])
	if err := os.WriteFile(filepath.Join(h.State["workspace"], "release"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("RunStep: %v", err)
	}
}

// cgroupFile finds file (e.g. "memory.max", "cpu.cfs_quota_us") of the
// cgroup a step printed in lines (its /proc/self/cgroup).
func cgroupFile(t *testing.T, lines []string, file string) string {
	t.Helper()
	ctrl, _, _ := strings.Cut(file, ".")
	for _, l := range lines {
		parts := strings.SplitN(l, ":", 3)
		if len(parts) != 3 {
			continue
		}
		var dirs []string
		if parts[1] == "" {
			dirs = []string{"/sys/fs/cgroup", "/sys/fs/cgroup/unified"}
		} else {
			for _, c := range strings.Split(parts[1], ",") {
				if c == ctrl {
					dirs = []string{"/sys/fs/cgroup/" + parts[1], "/sys/fs/cgroup/" + c}
				}
			}
		}
		for _, d := range dirs {
			p := filepath.Join(d, parts[2], file)
			if _, err := os.Stat(p); err == nil {
				return p
			}
		}
	}
	t.Fatalf("no %s for the step's cgroups %q", file, lines)
	return ""
}

func readTrim(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// TestDriver_RunStep_cgroupLimits: the job's resources and PidsMax are
// written to the step's own cgroup, which is gone after the step.
func TestDriver_RunStep_cgroupLimits(t *testing.T) {
	d, h := newConfined(t, exec.Config{PidsMax: 77}, drivers.WorkerConfig{CPU: 250, MemoryMB: 96})
	var cgDirs []string
	readWhileRunning(t, d, h, func(lines []string) {
		v2 := d.Fingerprint(t.Context()).Attributes["driver.exec.limits"] == "cgroup-v2"
		want := map[string]string{"pids.max": "77"}
		if v2 {
			want["memory.max"] = strconv.Itoa(96 << 20)
			want["cpu.max"] = "250000 1000000"
		} else {
			want["memory.limit_in_bytes"] = strconv.Itoa(96 << 20)
			want["cpu.cfs_quota_us"] = "250000"
			want["cpu.cfs_period_us"] = "1000000"
		}
		for file, v := range want {
			p := cgroupFile(t, lines, file)
			if got := readTrim(t, p); got != v {
				t.Errorf("%s = %q, want %q", p, got, v)
			}
			if !strings.Contains(p, "/w-w1-") {
				t.Errorf("%s: want a step cgroup named w-<worker>-...", p)
			}
			cgDirs = append(cgDirs, filepath.Dir(p))
		}
	})
	for _, dir := range cgDirs {
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("step cgroup %s still there after the step: %v", dir, err)
		}
	}
}

// TestDriver_RunStep_memoryLimit: a step that grows past its memory limit
// is killed by the kernel, fails, and the log says why.
func TestDriver_RunStep_memoryLimit(t *testing.T) {
	d, h := newConfined(t, exec.Config{}, drivers.WorkerConfig{MemoryMB: 64})
	// Command substitution keeps all 200 MB in the shell's memory.
	res, rec, err := runStep(t, t.Context(), d, h, "echo start\nx=$(head -c 200000000 /dev/zero | tr '\\0' a)\necho survived ${#x}", nil)
	if err != nil {
		t.Fatalf("RunStep: %v", err)
	}
	if res.ExitCode == 0 || strings.Contains(rec.String(), "survived") {
		t.Fatalf("exit %d, output:%s; want the step killed", res.ExitCode, rec)
	}
	want := "memory limit 64 MiB exceeded"
	if got := rec.Texts(drivers.Stderr); len(got) == 0 || !strings.Contains(got[len(got)-1], want) {
		t.Errorf("stderr = %q, want a last line saying %q", got, want)
	}
	// The worker is still usable: the next step runs.
	if res, _, err := runStep(t, t.Context(), d, h, "true", nil); err != nil || res.ExitCode != 0 {
		t.Errorf("next step: exit %d, %v", res.ExitCode, err)
	}
}

// TestDriver_RunStep_pidsMax: a fork bomb hits pids.max instead of the
// host's limit, and everything it forked dies with the step's cgroup,
// including a process that left the step's process group.
func TestDriver_RunStep_pidsMax(t *testing.T) {
	d, h := newConfined(t, exec.Config{PidsMax: 32}, drivers.WorkerConfig{})
	// Bounded first: 100 background sleeps cannot all start under 32 pids.
	res, rec, err := runStep(t, t.Context(), d, h, "i=0\nwhile [ $i -lt 100 ]; do sleep 300 & i=$((i+1)); done\necho all started", nil)
	if err != nil {
		t.Fatalf("RunStep: %v", err)
	}
	if res.ExitCode == 0 || strings.Contains(rec.String(), "all started") {
		t.Fatalf("exit %d, output:%s; want fork to fail under pids.max 32", res.ExitCode, rec)
	}
	// Now a real fork bomb, stopped by a timeout; its cgroup is killed.
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	start := time.Now()
	_, rec, err = runStep(t, ctx, d, h, "setsid sleep 300 &\necho $!\nbomb() { bomb | bomb & }\nbomb\nwait", nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("fork bomb: err %v, want the deadline; output: %s", err, rec)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("fork bomb step took %v to stop", took)
	}
	if out := rec.Texts(drivers.Stdout); len(out) > 0 {
		if pid, err := strconv.Atoi(out[0]); err == nil {
			processGone(t, pid)
		}
	} else {
		t.Errorf("no pid printed: %s", rec)
	}
	if res, _, err := runStep(t, t.Context(), d, h, "true", nil); err != nil || res.ExitCode != 0 {
		t.Errorf("next step: exit %d, %v", res.ExitCode, err)
	}
}

// TestDriver_RunStep_user: steps run as nobody in a workspace they own,
// and cannot write a root-owned file.
func TestDriver_RunStep_user(t *testing.T) {
	requireRoot(t)
	base := t.TempDir()
	// t.TempDir makes 0700 directories: open the test's own two to nobody.
	// (An ancestor above them that nobody cannot pass makes Fingerprint
	// unhealthy below, naming it.)
	for _, d := range []string{base, filepath.Dir(base)} {
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	rootOwned := filepath.Join(base, "root-owned")
	if err := os.WriteFile(rootOwned, []byte("x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	d := exec.New(exec.Config{Root: filepath.Join(base, "workspaces"), User: "nobody", Limits: exec.LimitsOff})
	if fp := d.Fingerprint(t.Context()); !fp.Healthy || fp.Attributes["driver.exec.user"] != "nobody" {
		t.Fatalf("Fingerprint = %+v, want healthy with user nobody", fp)
	}
	h := newWorker(t, d, "w1", nil)
	res, rec, err := runStep(t, t.Context(), d, h, "id -u\ntouch mine\nstat -c %u mine\necho y >> "+rootOwned, nil)
	if err != nil {
		t.Fatalf("RunStep: %v", err)
	}
	if got := rec.Texts(drivers.Stdout); len(got) < 2 || got[0] != "65534" || got[1] != "65534" {
		t.Errorf("stdout = %q, want id -u and the new file's owner 65534", got)
	}
	if res.ExitCode == 0 {
		t.Errorf("appending to a root-owned 0644 file as nobody succeeded")
	}
	if b, _ := os.ReadFile(rootOwned); string(b) != "x\n" {
		t.Errorf("root-owned file = %q", b)
	}

	for _, tc := range []struct{ user, want string }{
		{"ciplat-no-such-user", `user "ciplat-no-such-user" does not exist`},
		{"nobody:ciplat-no-such-group", `group "ciplat-no-such-group" does not exist`},
		{"", ""},
	} {
		if tc.user == "" {
			continue
		}
		d := exec.New(exec.Config{Root: filepath.Join(base, "ws-"+tc.user), User: tc.user})
		if fp := d.Fingerprint(t.Context()); fp.Healthy || !strings.Contains(fp.Reason, tc.want) {
			t.Errorf("user %q: Fingerprint = %+v, want unhealthy saying %q", tc.user, fp, tc.want)
		}
		if _, err := d.CreateWorker(t.Context(), drivers.WorkerConfig{ID: "w"}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("user %q: CreateWorker err %v, want %q", tc.user, err, tc.want)
		}
	}

	// A Root nobody cannot reach is reported, naming the directory.
	closed := filepath.Join(t.TempDir(), "closed")
	if err := os.Mkdir(closed, 0o700); err != nil {
		t.Fatal(err)
	}
	d = exec.New(exec.Config{Root: filepath.Join(closed, "ws"), User: "65534:65534"})
	if fp := d.Fingerprint(t.Context()); fp.Healthy || !strings.Contains(fp.Reason, closed+" is mode 0700") {
		t.Errorf("unreachable root: Fingerprint = %+v, want unhealthy naming %s", fp, closed)
	}
}

// TestDriver_DestroyWorker_reapsCgroups: a restarted agent destroying a
// worker kills what a step of the old agent left running in its cgroup.
func TestDriver_DestroyWorker_reapsCgroups(t *testing.T) {
	old, h := newConfined(t, exec.Config{}, drivers.WorkerConfig{})
	rec := drivertest.NewRecorder()
	done := make(chan drivers.StepResult, 1)
	go func() {
		res, _ := old.RunStep(context.Background(), h, drivers.StepConfig{Name: "s", Run: "echo up\nexec sleep 300"}, rec)
		done <- res
	}()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := rec.WaitLine(ctx, drivers.Stdout, "up"); err != nil {
		t.Fatal(err)
	}
	restarted := exec.New(exec.Config{Root: filepath.Dir(h.State["workspace"]), Limits: exec.LimitsCgroup,
		CgroupParent: "ciplat-test-" + strconv.Itoa(os.Getpid()) + "-" + t.Name()})
	if err := restarted.DestroyWorker(ctx, h); err != nil {
		t.Fatalf("DestroyWorker: %v", err)
	}
	select {
	case res := <-done:
		if res.ExitCode != 128+9 {
			t.Errorf("old step exit %d, want 137 (SIGKILL)", res.ExitCode)
		}
	case <-ctx.Done():
		t.Fatal("the old agent's step still runs after the new agent destroyed its worker")
	}
}
