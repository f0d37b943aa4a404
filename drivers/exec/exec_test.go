//go:build unix

package exec_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ciplat/ciplat/drivers"
	"github.com/ciplat/ciplat/drivers/drivertest"
	"github.com/ciplat/ciplat/drivers/exec"
)

func TestDriver_Conformance(t *testing.T) {
	base := t.TempDir()
	drivertest.Run(t, func(t *testing.T) drivers.Driver {
		// Same subtest, same Root: a second call is a restarted agent.
		return exec.New(exec.Config{Root: filepath.Join(base, t.Name()), KillGrace: 500 * time.Millisecond})
	}, drivertest.Options{HostProcesses: true})
}

// newDriver returns a driver over a fresh root, and the root.
func newDriver(t *testing.T) (*exec.Driver, string) {
	root := filepath.Join(t.TempDir(), "workspaces")
	return exec.New(exec.Config{Root: root, KillGrace: 300 * time.Millisecond}), root
}

// newWorker creates a worker destroyed at cleanup.
func newWorker(t *testing.T, d *exec.Driver, id string, env map[string]string) *drivers.WorkerHandle {
	t.Helper()
	h, err := d.CreateWorker(t.Context(), drivers.WorkerConfig{ID: id, JobID: "job-" + id, Env: env})
	if err != nil {
		t.Fatalf("CreateWorker: %v", err)
	}
	t.Cleanup(func() { d.DestroyWorker(context.Background(), h) })
	return h
}

// runStep runs script and returns the result and output.
func runStep(t *testing.T, ctx context.Context, d *exec.Driver, h *drivers.WorkerHandle, script string, env map[string]string) (drivers.StepResult, *drivertest.Recorder, error) {
	t.Helper()
	rec := drivertest.NewRecorder()
	res, err := d.RunStep(ctx, h, drivers.StepConfig{Name: "s", Run: script, Env: env}, rec)
	return res, rec, err
}

// processGone polls until pid is gone or a zombie, failing after 5s.
func processGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := syscall.Kill(pid, 0)
		stat, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		i := strings.LastIndexByte(string(stat), ')')
		if errors.Is(err, syscall.ESRCH) || (i > 0 && i+2 < len(stat) && stat[i+2] == 'Z') {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("process %d still alive", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestDriver_Fingerprint(t *testing.T) {
	d, root := newDriver(t)
	fp := d.Fingerprint(t.Context())
	if !fp.Detected || !fp.Healthy || fp.Version == "" || fp.Attributes["driver.exec.sh"] == "" {
		t.Fatalf("Fingerprint = %+v, want detected, healthy, a version and sh's path", fp)
	}
	if fi, err := os.Stat(root); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("root after Fingerprint: %v, %v; want a 0700 directory", fi, err)
	}

	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, nil, 0o600)
	for _, root := range []string{"", filepath.Join(file, "workspaces")} {
		fp := exec.New(exec.Config{Root: root}).Fingerprint(t.Context())
		if !fp.Detected || fp.Healthy || fp.Reason == "" {
			t.Errorf("Root %q: Fingerprint = %+v, want detected, unhealthy, with a reason", root, fp)
		}
	}
}

func TestDriver_CreateWorker(t *testing.T) {
	d, root := newDriver(t)
	h := newWorker(t, d, "w1", map[string]string{"SECRET": "s"})
	ws := filepath.Join(root, "w1")
	if h.State["workspace"] != ws || h.Driver != "exec" || h.JobID != "job-w1" {
		t.Errorf("handle = %+v, want workspace %s", h, ws)
	}
	if fi, err := os.Stat(ws); err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o700 {
		t.Errorf("workspace: %v, %v; want a 0700 directory", fi, err)
	}
	if fi, err := os.Stat(filepath.Join(root, ".workers", "w1.json")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("worker record: %v, %v; want a 0600 file", fi, err)
	}
	if entries, _ := os.ReadDir(ws); len(entries) != 0 {
		t.Errorf("workspace not empty: %v (git clone . needs it empty)", entries)
	}
	if _, err := d.CreateWorker(t.Context(), drivers.WorkerConfig{ID: "w1"}); err == nil {
		t.Error("CreateWorker with an existing ID succeeded")
	}
	for _, id := range []string{"", ".", "..", ".hidden", "a/b", "../escape", `a\b`, "a\x00b"} {
		if _, err := d.CreateWorker(t.Context(), drivers.WorkerConfig{ID: id}); err == nil {
			t.Errorf("CreateWorker(ID %q) succeeded", id)
		}
	}
}

// TestDriver_RunStep_streamsWhileRunning blocks the step on a marker file
// that the test creates only after the first line came through the sink.
func TestDriver_RunStep_streamsWhileRunning(t *testing.T) {
	d, _ := newDriver(t)
	h := newWorker(t, d, "w1", nil)
	rec := drivertest.NewRecorder()
	done := make(chan error, 1)
	go func() {
		res, err := d.RunStep(t.Context(), h, drivers.StepConfig{Name: "s",
			Run: "echo first\nwhile [ ! -e marker ]; do sleep 0.01; done\necho second"}, rec)
		if err == nil && res.ExitCode != 0 {
			err = errors.New("exit " + strconv.Itoa(res.ExitCode))
		}
		done <- err
	}()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := rec.WaitLine(ctx, drivers.Stdout, "first"); err != nil {
		t.Fatalf("first line: %v", err)
	}
	if err := os.WriteFile(filepath.Join(h.State["workspace"], "marker"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("RunStep: %v; output:%s", err, rec)
	}
	if got := rec.Texts(drivers.Stdout); len(got) != 2 || got[1] != "second" {
		t.Errorf("stdout = %q", got)
	}
}

func TestDriver_RunStep_lines(t *testing.T) {
	d, _ := newDriver(t)
	h := newWorker(t, d, "w1", nil)
	res, rec, err := runStep(t, t.Context(), d, h,
		`printf 'crlf\r\n'; head -c 200000 /dev/zero | tr '\0' a; echo; printf 'no newline'`, nil)
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("exit %d, err %v", res.ExitCode, err)
	}
	got := rec.Texts(drivers.Stdout)
	if len(got) != 6 || got[0] != "crlf" || got[5] != "no newline" {
		t.Fatalf("got %d lines, want crlf, 4 pieces, no newline", len(got))
	}
	if joined := strings.Join(got[1:5], ""); joined != strings.Repeat("a", 200000) || len(got[1]) != 64<<10 {
		t.Errorf("long line split into %d, %d, %d, %d bytes", len(got[1]), len(got[2]), len(got[3]), len(got[4]))
	}
}

func TestDriver_RunStep_env(t *testing.T) {
	t.Setenv("CIPLAT_TEST_AGENT_SECRET", "agent-only")
	d, _ := newDriver(t)
	h := newWorker(t, d, "w1", map[string]string{"HOME": "/overridden-by-worker"})
	res, rec, err := runStep(t, t.Context(), d, h, `echo "home=$HOME"; echo "secret=${CIPLAT_TEST_AGENT_SECRET-unset}"; echo "path=$PATH"`, nil)
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("exit %d, err %v", res.ExitCode, err)
	}
	want := []string{"home=/overridden-by-worker", "secret=unset", "path=" + os.Getenv("PATH")}
	if got := rec.Texts(drivers.Stdout); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("got %q, want %q", got, want)
	}
	_, _, err = runStep(t, t.Context(), d, h, "true", map[string]string{"BAD=NAME": "x"})
	if err == nil || !strings.Contains(err.Error(), "BAD=NAME") {
		t.Errorf("bad env name: err %v, want one naming it", err)
	}
}

func TestDriver_RunStep_exitBySignal(t *testing.T) {
	d, _ := newDriver(t)
	h := newWorker(t, d, "w1", nil)
	res, _, err := runStep(t, t.Context(), d, h, "kill -9 $$", nil)
	if err != nil || res.ExitCode != 128+9 {
		t.Errorf("exit %d, err %v; want 137", res.ExitCode, err)
	}
}

// TestDriver_RunStep_killsLeftovers: what a step leaves running in its group
// dies when the step ends.
func TestDriver_RunStep_killsLeftovers(t *testing.T) {
	d, _ := newDriver(t)
	h := newWorker(t, d, "w1", nil)
	res, rec, err := runStep(t, t.Context(), d, h, "sleep 300 &\necho $!", nil)
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("exit %d, err %v", res.ExitCode, err)
	}
	pid, err := strconv.Atoi(rec.Texts(drivers.Stdout)[0])
	if err != nil {
		t.Fatal(err)
	}
	processGone(t, pid)
}

// TestDriver_RunStep_escapedProcess: a process that left the group and holds
// stdout delays the step by the drain timeout only.
func TestDriver_RunStep_escapedProcess(t *testing.T) {
	d, _ := newDriver(t)
	h := newWorker(t, d, "w1", nil)
	start := time.Now()
	// The marker appears after setsid(), so the group kill cannot catch it.
	res, rec, err := runStep(t, t.Context(), d, h,
		"setsid sh -c 'touch escaped; exec sleep 30' &\nwhile [ ! -e escaped ]; do sleep 0.01; done\necho $!", nil)
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("exit %d, err %v", res.ExitCode, err)
	}
	if pid, err := strconv.Atoi(rec.Texts(drivers.Stdout)[0]); err == nil {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	took := time.Since(start)
	if took > 5*time.Second {
		t.Errorf("RunStep took %v with an escaped process holding stdout", took)
	}
	t.Logf("returned after %v", took)
}

// TestDriver_RunStep_killGrace: ctx cancel sends SIGTERM first, which a
// step may trap (and finish within the grace); one that ignores it is
// killed after KillGrace.
func TestDriver_RunStep_killGrace(t *testing.T) {
	for _, tc := range []struct {
		name, script, want string
		grace, within      time.Duration
	}{
		{"traps", "trap 'echo got-term; exit 3' TERM\necho ready\nwhile :; do sleep 0.05; done", "got-term", 20 * time.Second, 10 * time.Second},
		{"ignores", "trap '' TERM\necho ready\nsleep 30", "", 300 * time.Millisecond, 5 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := exec.New(exec.Config{Root: t.TempDir(), KillGrace: tc.grace})
			h := newWorker(t, d, "w1", nil)
			ctx, cancel := context.WithCancel(t.Context())
			rec := drivertest.NewRecorder()
			type out struct {
				res drivers.StepResult
				err error
			}
			done := make(chan out, 1)
			go func() {
				res, err := d.RunStep(ctx, h, drivers.StepConfig{Name: tc.name, Run: tc.script}, rec)
				done <- out{res, err}
			}()
			wctx, wcancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer wcancel()
			if err := rec.WaitLine(wctx, drivers.Stdout, "ready"); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			cancel()
			o := <-done
			if !errors.Is(o.err, context.Canceled) || o.res.ExitCode != -1 {
				t.Errorf("exit %d, err %v; want -1, context.Canceled", o.res.ExitCode, o.err)
			}
			if took := time.Since(start); took > tc.within {
				t.Errorf("took %v, want within %v", took, tc.within)
			}
			if tc.want != "" && !strings.Contains(rec.String(), tc.want) {
				t.Errorf("output lacks %q:%s", tc.want, rec)
			}
		})
	}
}

func TestDriver_DestroyWorker(t *testing.T) {
	d, root := newDriver(t)
	h := newWorker(t, d, "w1", nil)
	// A read-only tree, as the Go module cache leaves.
	if res, _, err := runStep(t, t.Context(), d, h, "mkdir -p ro/sub && touch ro/sub/f && chmod -R a-w ro", nil); err != nil || res.ExitCode != 0 {
		t.Fatalf("exit %d, err %v", res.ExitCode, err)
	}
	if err := d.DestroyWorker(t.Context(), h); err != nil {
		t.Fatalf("DestroyWorker: %v", err)
	}
	if entries, _ := os.ReadDir(root); len(entries) != 1 || entries[0].Name() != ".workers" {
		t.Errorf("root after destroy: %v, want only .workers", entries)
	}
	if entries, _ := os.ReadDir(filepath.Join(root, ".workers")); len(entries) != 0 {
		t.Errorf(".workers after destroy: %v, want empty", entries)
	}
}

// TestDriver_ListWorkers_orphans: a workspace without a record and a record
// without a workspace (a create or destroy cut short) are both listed, and
// destroying them cleans up.
func TestDriver_ListWorkers_orphans(t *testing.T) {
	d, root := newDriver(t)
	newWorker(t, d, "whole", nil)
	os.Mkdir(filepath.Join(root, "no-record"), 0o700)
	os.WriteFile(filepath.Join(root, ".workers", "no-workspace.json"), []byte(`{"handle":{"id":"no-workspace","driver":"exec"}}`), 0o600)
	os.WriteFile(filepath.Join(root, "stray-file"), nil, 0o600)

	hs, err := d.ListWorkers(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, h := range hs {
		ids = append(ids, h.ID)
		if err := d.DestroyWorker(t.Context(), h); err != nil {
			t.Errorf("DestroyWorker(%s): %v", h.ID, err)
		}
	}
	if got := strings.Join(ids, ","); got != "no-record,no-workspace,whole" {
		t.Errorf("listed %s", got)
	}
	if hs, _ := d.ListWorkers(t.Context()); len(hs) != 0 {
		t.Errorf("%d workers left after destroying all", len(hs))
	}
}
