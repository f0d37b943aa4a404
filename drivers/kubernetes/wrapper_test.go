//go:build unix

package kubernetes

import (
	"bufio"
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The step scripts are plain POSIX sh: these tests run them with the host's
// sh, as kwok's exec does, so they are checked without any cluster.

// shells runs f for the host's sh and, when installed, busybox's sh (the
// shell of most small CI images): their kill builtins differ.
func shells(t *testing.T, f func(t *testing.T, sh []string)) {
	t.Run("sh", func(t *testing.T) { f(t, []string{"sh"}) })
	if bb, err := exec.LookPath("busybox"); err == nil {
		t.Run("busybox", func(t *testing.T) { f(t, []string{bb, "sh"}) })
	}
}

// run returns a command running script with sh and args.
func run(sh []string, script string, args ...string) *exec.Cmd {
	return exec.Command(sh[0], append(append(sh[1:], "-c", script), args...)...)
}

// wrapper starts stepWrapper with script in a fresh workspace root and
// returns the command, its stdout lines, the workspace and the control
// directory.
func wrapper(t *testing.T, sh []string, script string) (*exec.Cmd, *bufio.Scanner, string, string) {
	cmd, out, ws, ctl, _ := wrapperStderr(t, sh, script)
	return cmd, out, ws, ctl
}

// wrapperStderr is wrapper that also returns the step's stderr, complete
// once the command has been waited for.
func wrapperStderr(t *testing.T, sh []string, script string) (*exec.Cmd, *bufio.Scanner, string, string, *bytes.Buffer) {
	t.Helper()
	root := t.TempDir()
	ws, ctl := filepath.Join(root, "w1"), filepath.Join(root, ".ciplat", "w1")
	cmd := run(sh, stepWrapper, "ciplat-step", ws, ctl, script)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	sc := bufio.NewScanner(out)
	if !sc.Scan() || sc.Text() != startMarker {
		t.Fatalf("first stdout line %q, want the start marker %q", sc.Text(), startMarker)
	}
	return cmd, sc, ws, ctl, &stderr
}

func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

func TestStepWrapper_exitAndWorkspace(t *testing.T) { shells(t, testWrapperExit) }

func testWrapperExit(t *testing.T, sh []string) {
	cmd, out, ws, ctl := wrapper(t, sh, "pwd; echo hi > f; exit 42")
	if !out.Scan() || out.Text() != ws {
		t.Errorf("step started in %q, want the workspace %s", out.Text(), ws)
	}
	if code := exitCode(cmd.Wait()); code != 42 {
		t.Errorf("exit %d, want 42", code)
	}
	if b, err := os.ReadFile(filepath.Join(ws, "f")); err != nil || string(b) != "hi\n" {
		t.Errorf("workspace file: %q, %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(ctl, "step.pid")); !os.IsNotExist(err) {
		t.Errorf("step.pid left after the step: %v", err)
	}
}

// TestStepWrapper_backgroundChild: the wrapper ends when the script's shell
// does, and kills what it left in the background.
func TestStepWrapper_backgroundChild(t *testing.T) { shells(t, testWrapperBackground) }

func testWrapperBackground(t *testing.T, sh []string) {
	start := time.Now()
	cmd, out, _, _ := wrapper(t, sh, "sleep 29 & echo bg=$!")
	if !out.Scan() {
		t.Fatal("no output")
	}
	for out.Scan() { // EOF: nobody holds stdout any more
	}
	if code := exitCode(cmd.Wait()); code != 0 {
		t.Errorf("exit %d", code)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("took %v: the background child held the step", took)
	}
}

// TestStepKiller: SIGTERM through stepKiller ends the whole step (its shell
// and the foreground child) with 143.
func TestStepKiller(t *testing.T) { shells(t, testStepKiller) }

func testStepKiller(t *testing.T, sh []string) {
	cmd, out, _, ctl, stderr := wrapperStderr(t, sh, "echo started; sleep 29; echo never")
	if !out.Scan() || out.Text() != "started" {
		t.Fatalf("output %q", out.Text())
	}
	// The wrapper writes step.pid right after starting the script; the
	// script's first line may come first.
	deadline := time.Now().Add(5 * time.Second)
	for {
		if b, _ := os.ReadFile(filepath.Join(ctl, "step.pid")); strings.TrimSpace(string(b)) != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no step.pid after 5s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if b, err := run(sh, stepKiller, "ciplat-kill", ctl, "TERM").CombinedOutput(); err != nil {
		t.Fatalf("stepKiller: %v: %s", err, b)
	}
	done := make(chan error, 1)
	go func() {
		for out.Scan() {
		}
		done <- cmd.Wait()
	}()
	select {
	case err := <-done:
		if code := exitCode(err); code != 143 {
			t.Errorf("exit %d, want 143 (SIGTERM)", code)
		}
		if stderr.Len() > 0 {
			t.Errorf("stderr %q: the step wrote nothing there", stderr.String())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the step survived SIGTERM for 5s")
	}
	// Nothing to signal any more: the killer still exits 0.
	if b, err := run(sh, stepKiller, "ciplat-kill", ctl, "KILL").CombinedOutput(); err != nil {
		t.Errorf("stepKiller without a step: %v: %s", err, b)
	}
}

// TestWorkerCleanup removes the workspace and the control directory.
func TestWorkerCleanup(t *testing.T) { shells(t, testWorkerCleanup) }

func testWorkerCleanup(t *testing.T, sh []string) {
	cmd, _, ws, ctl := wrapper(t, sh, "echo x > f")
	cmd.Wait()
	if b, err := run(sh, workerCleanup, "ciplat-cleanup", ws, ctl).CombinedOutput(); err != nil {
		t.Fatalf("cleanup: %v: %s", err, b)
	}
	for _, dir := range []string{ws, ctl} {
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("%s still there: %v", dir, err)
		}
	}
}
