package plugin

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ciplat/ciplat/drivers"
	"github.com/ciplat/ciplat/drivers/drivertest"
	execdriver "github.com/ciplat/ciplat/drivers/exec"
)

// shellPlugin is the example plugin, built by TestMain.
var shellPlugin string

// envHost makes the test binary a host that opens the plugin named by the
// variable, prints its PID and waits to be killed (see
// TestServe_exitsWithHost).
const envHost = "CIPLAT_PLUGIN_TEST_HOST"

func TestMain(m *testing.M) {
	if path := os.Getenv(envHost); path != "" {
		d, err := New(Config{Path: path, StateDir: os.Getenv(EnvStateDir)})
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		d.mu.Lock()
		fmt.Println(d.inst.client.ReattachConfig().Pid)
		d.mu.Unlock()
		select {}
	}
	dir, err := os.MkdirTemp("", "ciplat-plugin-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	shellPlugin = filepath.Join(dir, "ciplat-driver-shell")
	// The go that runs this test: GOROOT is set by `go test`.
	gobin := "go"
	if root := os.Getenv("GOROOT"); root != "" {
		gobin = filepath.Join(root, "bin", "go")
	}
	build := exec.Command(gobin, "build", "-o", shellPlugin, "./example/ciplat-driver-shell")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building the example plugin: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// open starts the example plugin over stateDir, closed at cleanup.
func open(t testing.TB, cfg Config) *Driver {
	t.Helper()
	if cfg.Path == "" {
		cfg.Path = shellPlugin
	}
	d, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func TestDriver_Conformance(t *testing.T) {
	base := t.TempDir()
	drivertest.Run(t, func(t *testing.T) drivers.Driver {
		// Same subtest, same state dir: a second call is a restarted agent
		// with a new plugin process.
		return open(t, Config{StateDir: filepath.Join(base, t.Name())})
	}, drivertest.Options{HostProcesses: true})
}

func TestOpen(t *testing.T) {
	d := open(t, Config{StateDir: t.TempDir()})
	if d.Name() != "shell" {
		t.Errorf("Name() = %q, want shell", d.Name())
	}
	fp := d.Fingerprint(t.Context())
	if !fp.Healthy || fp.Attributes["driver.plugin.path"] != shellPlugin || fp.Attributes["driver.exec.sh"] == "" {
		t.Errorf("Fingerprint = %+v; want healthy, the plugin's path and the inner driver's attributes", fp)
	}
	if _, err := Open(filepath.Join(t.TempDir(), "none")); err == nil {
		t.Error("Open of a missing executable succeeded")
	}
}

// TestServe_byHand: a plugin run outside a host says so and exits non-zero.
func TestServe_byHand(t *testing.T) {
	out, err := exec.Command(shellPlugin).CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() == 0 || !strings.Contains(string(out), "plugin") {
		t.Errorf("running the plugin by hand: err %v, output %q; want a non-zero exit explaining it is a plugin", err, out)
	}
}

// TestHandshake_versionMismatch: a host of another protocol version cannot
// start the plugin.
func TestHandshake_versionMismatch(t *testing.T) {
	saved := Handshake
	t.Cleanup(func() { Handshake = saved })
	Handshake.ProtocolVersion = ProtocolVersion + 1
	d, err := New(Config{Path: shellPlugin, StateDir: t.TempDir(), StartTimeout: 10 * time.Second})
	if err == nil {
		d.Close()
		t.Fatal("a host of protocol version 2 started a version 1 plugin")
	}
	if !strings.Contains(err.Error(), "version") {
		t.Errorf("err = %v; want it to be about the version", err)
	}
}

// pid returns the plugin's current process ID.
func (d *Driver) pid(t *testing.T) int {
	t.Helper()
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.inst == nil {
		t.Fatal("no plugin process")
	}
	rc := d.inst.client.ReattachConfig()
	if rc == nil || rc.Pid == 0 {
		t.Fatal("plugin process has no PID")
	}
	return rc.Pid
}

// TestDriver_pluginCrash kills the plugin process in the middle of a step:
// the step fails with ErrPluginExited, the driver is unhealthy until the
// restart delay, and the next CreateWorker starts a new process that finds
// the old worker again.
func TestDriver_pluginCrash(t *testing.T) {
	var now atomic.Int64
	now.Store(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	clock := func() time.Time { return time.Unix(0, now.Load()) }
	d := open(t, Config{StateDir: t.TempDir(), RestartDelay: time.Minute, Now: clock})
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()

	h, err := d.CreateWorker(ctx, drivers.WorkerConfig{ID: "crash-1", JobID: "job-1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.DestroyWorker(context.Background(), h) })
	rec := drivertest.NewRecorder()
	type outcome struct {
		res drivers.StepResult
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		res, err := d.RunStep(ctx, h, drivers.StepConfig{Name: "long", Run: "echo mine > file; echo started; exec sleep 20"}, rec)
		done <- outcome{res, err}
	}()
	if err := rec.WaitLine(ctx, drivers.Stdout, "started"); err != nil {
		t.Fatalf("waiting for the step: %v", err)
	}
	oldPID := d.pid(t)
	if err := syscall.Kill(oldPID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case o := <-done:
		if !errors.Is(o.err, ErrPluginExited) || o.res.ExitCode != -1 {
			t.Errorf("RunStep when the plugin died: exit %d, err %v; want -1 and ErrPluginExited", o.res.ExitCode, o.err)
		}
		t.Logf("RunStep: %v", o.err)
	case <-time.After(10 * time.Second):
		t.Fatal("RunStep still running 10s after the plugin was killed")
	}

	fp := d.Fingerprint(ctx)
	if fp.Healthy || !fp.Detected || !strings.Contains(fp.Reason, "exited") {
		t.Errorf("Fingerprint after the crash = %+v; want detected, unhealthy, saying it exited", fp)
	}

	// The next real call restarts the plugin.
	h2, err := d.CreateWorker(ctx, drivers.WorkerConfig{ID: "crash-2", JobID: "job-2"})
	if err != nil {
		t.Fatalf("CreateWorker after the crash: %v", err)
	}
	t.Cleanup(func() { d.DestroyWorker(context.Background(), h2) })
	if newPID := d.pid(t); newPID == oldPID {
		t.Errorf("plugin PID still %d after a restart", newPID)
	}
	if fp := d.Fingerprint(ctx); !fp.Healthy || fp.Attributes["driver.plugin.starts"] != "2" {
		t.Errorf("Fingerprint after the restart = %+v; want healthy, 2 starts", fp)
	}
	// The worker of the crashed process is still there for the new one.
	if err := d.RecoverWorker(ctx, h); err != nil {
		t.Errorf("RecoverWorker of the old worker after the restart: %v", err)
	}
	rec = drivertest.NewRecorder()
	res, err := d.RunStep(ctx, h, drivers.StepConfig{Name: "again", Run: "cat file"}, rec)
	if err != nil || res.ExitCode != 0 || strings.Join(rec.Texts(drivers.Stdout), "|") != "mine" {
		t.Errorf("step in the old worker after the restart: exit %d, err %v; output:%s", res.ExitCode, err, rec)
	}
}

// TestDriver_fingerprintRestartsAfterDelay: with no other call, the
// driver comes back by itself once RestartDelay has passed.
func TestDriver_fingerprintRestartsAfterDelay(t *testing.T) {
	var now atomic.Int64
	now.Store(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	clock := func() time.Time { return time.Unix(0, now.Load()) }
	d := open(t, Config{StateDir: t.TempDir(), RestartDelay: time.Minute, Now: clock})
	pid := d.pid(t)
	syscall.Kill(pid, syscall.SIGKILL)
	deadline := time.Now().Add(10 * time.Second)
	for d.Fingerprint(t.Context()).Healthy {
		if time.Now().After(deadline) {
			t.Fatal("Fingerprint still healthy 10s after the plugin was killed")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if fp := d.Fingerprint(t.Context()); fp.Healthy {
		t.Fatalf("healthy within the restart delay: %+v", fp)
	}
	now.Add(int64(time.Minute))
	if fp := d.Fingerprint(t.Context()); !fp.Healthy {
		t.Errorf("Fingerprint after the restart delay = %+v; want healthy (restarted)", fp)
	}
}

// TestDriver_closed: calls after Close fail, and Close stops the process.
func TestDriver_closed(t *testing.T) {
	d := open(t, Config{StateDir: t.TempDir()})
	pid := d.pid(t)
	d.Close()
	if _, err := d.ListWorkers(t.Context()); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("ListWorkers after Close: %v", err)
	}
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("plugin process %d after Close: kill -0 says %v, want it gone", pid, err)
	}
}

// TestServe_exitsWithHost: a plugin whose host is SIGKILLed exits by
// itself instead of running on as an orphan.
func TestServe_exitsWithHost(t *testing.T) {
	host := exec.Command(os.Args[0], "-test.run=^$")
	host.Env = append(os.Environ(), envHost+"="+shellPlugin, EnvStateDir+"="+t.TempDir())
	out, err := host.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := host.Start(); err != nil {
		t.Fatal(err)
	}
	var pid int
	if _, err := fmt.Fscan(out, &pid); err != nil || pid <= 0 {
		host.Process.Kill()
		host.Wait()
		t.Fatalf("host did not print the plugin's PID: %v", err)
	}
	host.Process.Kill()
	host.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for syscall.Kill(pid, 0) == nil && !zombie(pid) {
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("plugin %d still running 10s after its host was killed", pid)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// zombie reports whether pid has exited but is not reaped yet.
func zombie(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(stat), ')')
	return i > 0 && i+2 < len(stat) && stat[i+2] == 'Z'
}

func TestDiscover(t *testing.T) {
	dir := t.TempDir()
	if err := os.Symlink(shellPlugin, filepath.Join(dir, "ciplat-driver-shell")); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "ciplat-driver-notexec"), []byte("#!/bin/sh\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "README"), []byte("not a plugin"), 0o755)
	os.Mkdir(filepath.Join(dir, "ciplat-driver-dir"), 0o755)

	state := t.TempDir()
	ds, err := Discover(dir, Config{StateDir: state})
	if err != nil {
		t.Fatalf("Discover: %v", err)
	}
	for _, d := range ds {
		t.Cleanup(func() { d.Close() })
	}
	if len(ds) != 1 || ds["shell"] == nil {
		t.Fatalf("Discover = %v, want only shell", ds)
	}
	h, err := ds["shell"].CreateWorker(t.Context(), drivers.WorkerConfig{ID: "w1"})
	if err != nil {
		t.Fatal(err)
	}
	defer ds["shell"].DestroyWorker(context.Background(), h)
	if _, err := os.Stat(filepath.Join(state, "ciplat-driver-shell", "w1")); err != nil {
		t.Errorf("the plugin's workspace is not under its state dir: %v", err)
	}

	// Two plugins with one name.
	os.Symlink(shellPlugin, filepath.Join(dir, "ciplat-driver-shell2"))
	if ds, err := Discover(dir, Config{}); err == nil || !strings.Contains(err.Error(), "both provide") {
		for _, d := range ds {
			d.Close()
		}
		t.Errorf("Discover with two plugins named shell: %v", err)
	}
	if ds, err := Discover(filepath.Join(dir, "missing"), Config{}); err != nil || len(ds) != 0 {
		t.Errorf("Discover of a missing dir = %v, %v; want none, no error", ds, err)
	}
}

// BenchmarkPluginCallOverhead runs a trivial step (`true`) through the
// example plugin and through the same exec driver in-process, alternating,
// and reports both and their ratio.
func BenchmarkPluginCallOverhead(b *testing.B) {
	ctx := context.Background()
	inproc := execdriver.New(execdriver.Config{Root: b.TempDir()})
	viaPlugin := open(b, Config{StateDir: b.TempDir()})
	var hs [2]*drivers.WorkerHandle
	for i, d := range []drivers.Driver{inproc, viaPlugin} {
		h, err := d.CreateWorker(ctx, drivers.WorkerConfig{ID: "bench"})
		if err != nil {
			b.Fatal(err)
		}
		defer d.DestroyWorker(ctx, h)
		hs[i] = h
	}
	step := drivers.StepConfig{Name: "true", Run: "true"}
	var took [2]time.Duration
	iters := 0
	for b.Loop() {
		iters++
		for i, d := range []drivers.Driver{inproc, viaPlugin} {
			start := time.Now()
			res, err := d.RunStep(ctx, hs[i], step, nil)
			took[i] += time.Since(start)
			if err != nil || res.ExitCode != 0 {
				b.Fatalf("%s: exit %d, err %v", d.Name(), res.ExitCode, err)
			}
		}
	}
	n := float64(iters)
	b.ReportMetric(float64(took[0].Nanoseconds())/n, "inproc-ns/step")
	b.ReportMetric(float64(took[1].Nanoseconds())/n, "plugin-ns/step")
	b.ReportMetric(float64(took[1])/float64(took[0]), "plugin/inproc")
}
