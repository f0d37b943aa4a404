package agent_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ciplat/ciplat/api"
)

// binPath is the ciplat binary built once for the end-to-end tests.
var binPath string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "ciplat-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binPath = filepath.Join(dir, "ciplat")
	build := exec.Command("go", "build", "-o", binPath, "github.com/ciplat/ciplat")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build ciplat: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// agentProc is a `ciplat agent -dev` process started as a user would.
type agentProc struct {
	cmd  *exec.Cmd
	addr string
	out  *bytes.Buffer
	done chan struct{}
}

func startAgent(t *testing.T, dataDir string) *agentProc {
	t.Helper()
	return startAgentArgs(t, "agent", "-dev", "-data-dir", dataDir, "-http-addr", "127.0.0.1:0", "-log-level", "warn")
}

// startAgentArgs starts the binary with args and waits for its HTTP address.
func startAgentArgs(t *testing.T, args ...string) *agentProc {
	t.Helper()
	cmd := exec.Command(binPath, args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var errBuf bytes.Buffer
	cmd.Stderr = &errBuf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	a := &agentProc{cmd: cmd, out: &errBuf, done: make(chan struct{})}
	addrCh := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "HTTP API: "); ok {
				addrCh <- v
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	go func() { _ = cmd.Wait(); close(a.done) }()
	select {
	case a.addr = <-addrCh:
	case <-a.done:
		t.Fatalf("agent exited before serving: %s", errBuf.String())
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("agent did not print its address: %s", errBuf.String())
	}
	t.Cleanup(func() { a.stop(t) })
	return a
}

// stop sends SIGINT, as Ctrl-C would, and waits for a clean exit.
func (a *agentProc) stop(t *testing.T) {
	select {
	case <-a.done:
		return
	default:
	}
	_ = a.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-a.done:
		if code := a.cmd.ProcessState.ExitCode(); code != 0 {
			t.Errorf("agent exited %d: %s", code, a.out.String())
		}
	case <-time.After(30 * time.Second):
		_ = a.cmd.Process.Kill()
		t.Errorf("agent did not stop on SIGINT")
	}
}

// cli runs the ciplat CLI against an agent and returns stdout, stderr and the exit code.
func cli(t *testing.T, addr string, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binPath, args...)
	cmd.Env = append(os.Environ(), "CIPLAT_ADDR="+addr)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run %v: %v", args, err)
	}
	return out.String(), errb.String(), code
}

func apiClient(t *testing.T, addr string) *api.Client {
	c, err := api.NewClient(&api.Config{Address: addr})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

var idRe = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)

// TestE2E_DevAgentRunsPipeline is the user's path: start `ciplat agent -dev`,
// run the example pipeline with the CLI (live logs, retry of the flaky step,
// summary, exit 0), read it back with every read command, restart the agent
// on the same data dir and read again.
func TestE2E_DevAgentRunsPipeline(t *testing.T) {
	dataDir := t.TempDir()
	ag := startAgent(t, dataDir)

	out, errOut, code := cli(t, ag.addr, "pipeline", "run", "../../examples/hello.yml")
	if code != 0 {
		t.Fatalf("pipeline run exited %d\nstdout:\n%s\nstderr:\n%s\nagent:\n%s", code, out, errOut, ag.out.String())
	}
	for _, want := range []string{
		"[build/greet] hello from build",
		"[test/flaky] flaky test failed on attempt 1",
		"[test/flaky] flaky test passed on attempt 2",
		"[deploy/step-1] hello, deploying to staging",
		"SUCCEEDED",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("pipeline run output lacks %q:\n%s", want, out)
		}
	}
	pid := idRe.FindString(out)
	if pid == "" {
		t.Fatalf("no pipeline ID in output:\n%s", out)
	}
	// Lines of one step arrive in order; the build finished before deploy started.
	if i, j := strings.Index(out, "[build/greet]"), strings.Index(out, "[deploy/step-1]"); i < 0 || j < i {
		t.Errorf("build output should come before deploy output:\n%s", out)
	}

	c := apiClient(t, ag.addr)
	p, _, err := c.Pipeline(context.Background(), pid, nil)
	if err != nil {
		t.Fatal(err)
	}
	if p.State != api.StateSucceeded {
		t.Fatalf("pipeline %s", p.State)
	}
	var testJob *api.Job
	for _, j := range p.Jobs {
		if j.State != api.StateSucceeded {
			t.Errorf("job %s is %s", j.Name, j.State)
		}
		if j.Name == "test" {
			testJob = j
		}
	}
	if testJob == nil || testJob.Attempt != 2 {
		t.Fatalf("test job should have succeeded on attempt 2: %+v", testJob)
	}

	out, _, code = cli(t, ag.addr, "pipeline", "list")
	if code != 0 || !strings.Contains(out, pid[:8]) || !strings.Contains(out, "hello") {
		t.Errorf("pipeline list (%d):\n%s", code, out)
	}
	out, _, code = cli(t, ag.addr, "pipeline", "status", pid[:8])
	if code != 0 || !strings.Contains(out, "deploy") || !strings.Contains(out, "SUCCEEDED") {
		t.Errorf("pipeline status (%d):\n%s", code, out)
	}
	out, _, code = cli(t, ag.addr, "job", "status", testJob.ID)
	if code != 0 || !strings.Contains(out, "flaky") {
		t.Errorf("job status (%d):\n%s", code, out)
	}
	out, _, code = cli(t, ag.addr, "job", "logs", testJob.ID, "flaky")
	if code != 0 || !strings.Contains(out, "flaky test passed on attempt 2") {
		t.Errorf("job logs (%d):\n%s", code, out)
	}
	out, _, code = cli(t, ag.addr, "node", "status")
	if code != 0 || !strings.Contains(out, "ready") {
		t.Errorf("node status (%d):\n%s", code, out)
	}

	// A failing pipeline exits 1, a bad spec exits 2 with the line named.
	bad := filepath.Join(t.TempDir(), "fail.yml")
	os.WriteFile(bad, []byte("name: fails\njobs:\n  a:\n    steps: [ 'echo about to fail; exit 3' ]\n"), 0o600)
	out, _, code = cli(t, ag.addr, "pipeline", "run", bad)
	if code != 1 || !strings.Contains(out, "FAILED") {
		t.Errorf("failing pipeline: exit %d\n%s", code, out)
	}
	invalid := filepath.Join(t.TempDir(), "invalid.yml")
	os.WriteFile(invalid, []byte("name: bad\njobs:\n  a:\n    imgae: x\n    steps: [ 'true' ]\n"), 0o600)
	_, errOut, code = cli(t, ag.addr, "pipeline", "run", invalid)
	if code != 2 || !strings.Contains(errOut, "line 4") {
		t.Errorf("invalid spec: exit %d, stderr:\n%s", code, errOut)
	}

	// Restart on the same data dir: the pipeline and its logs are still there.
	ag.stop(t)
	ag2 := startAgent(t, dataDir)
	out, _, code = cli(t, ag2.addr, "pipeline", "status", pid)
	if code != 0 || !strings.Contains(out, "SUCCEEDED") {
		t.Errorf("after restart, pipeline status (%d):\n%s", code, out)
	}
	out, _, code = cli(t, ag2.addr, "job", "logs", testJob.ID, "flaky")
	if code != 0 || !strings.Contains(out, "passed on attempt 2") {
		t.Errorf("after restart, job logs (%d):\n%s", code, out)
	}
}

// TestE2E_CancelStopsWorker cancels a running pipeline: the job becomes
// CANCELLED and its process is killed (its marker file never appears).
func TestE2E_CancelStopsWorker(t *testing.T) {
	ag := startAgent(t, t.TempDir())
	marker := filepath.Join(t.TempDir(), "finished")
	spec := fmt.Sprintf("name: long\njobs:\n  a:\n    steps:\n      - name: wait\n        run: echo started; sleep 30; touch %s\n", marker)
	c := apiClient(t, ag.addr)
	ctx := context.Background()
	p, err := c.SubmitPipeline(ctx, []byte(spec), nil)
	if err != nil {
		t.Fatal(err)
	}
	// Wait for the step's first line: then the step is running.
	lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	errStop := fmt.Errorf("seen")
	err = c.PipelineLogs(lctx, p.ID, &api.LogOptions{Follow: true}, func(e *api.LogEntry) error {
		if e.Line == "started" {
			return errStop
		}
		return nil
	})
	cancel()
	if err != errStop {
		t.Fatalf("never saw the step start: %v", err)
	}
	out, errOut, code := cli(t, ag.addr, "pipeline", "cancel", p.ID)
	if code != 0 {
		t.Fatalf("cancel exited %d: %s %s", code, out, errOut)
	}
	got, _, err := c.Pipeline(ctx, p.ID, nil)
	if err != nil || got.State != api.StateCancelled || got.Jobs[0].State != api.StateCancelled {
		t.Fatalf("after cancel: %+v %v", got, err)
	}
	// The allocation stops: the client reports it once the worker is gone,
	// and the node's allocated resources drop to zero (a blocking query on
	// the node list wakes on that change).
	var idx uint64
	deadline := time.Now().Add(30 * time.Second)
	for {
		nodes, meta, err := c.Nodes(ctx, &api.QueryOptions{WaitIndex: idx, WaitTime: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		if len(nodes) == 1 && nodes[0].Allocated != nil && nodes[0].Allocated.CPU == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("worker of the cancelled job still holds resources: %+v", nodes[0].Allocated)
		}
		idx = meta.LastIndex
	}
	_, _, code = cli(t, ag.addr, "pipeline", "cancel", p.ID)
	if code != 1 {
		t.Errorf("cancelling a cancelled pipeline exited %d, want 1", code)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("the cancelled step ran to completion")
	}
}
