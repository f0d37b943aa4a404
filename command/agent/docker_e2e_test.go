package agent_test

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ciplat/ciplat/api"
)

const testImage = "ciplat/busybox:test"

// requireDocker builds the test image if needed. Without a usable engine
// the test is skipped with the reason, or fails under CI=true, where the
// engine is part of the test environment.
func requireDockerImage(tb testing.TB) {
	tb.Helper()
	out, err := exec.Command("docker", "version", "--format", "{{.Server.Version}}").CombinedOutput()
	if err == nil {
		out, err = exec.Command("../../tools/test-image/build.sh").CombinedOutput()
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			tb.Fatalf("CI=true and Docker is not usable: %v: %s", err, out)
		}
		tb.Skipf("Docker not usable, skipping (CI=true makes this a failure): %v: %s", err, out)
	}
}

// managedContainers lists the IDs of containers ciplat created for a job.
func managedContainers(t *testing.T, jobID string) []string {
	t.Helper()
	out, err := exec.Command("docker", "ps", "-aq", "--filter", "label=ciplat.job_id="+jobID).Output()
	if err != nil {
		t.Fatalf("docker ps: %v", err)
	}
	return strings.Fields(string(out))
}

func startDockerAgent(t *testing.T, dataDir string) *agentProc {
	return startAgentArgs(t, "agent", "-dev", "-data-dir", dataDir, "-http-addr", "127.0.0.1:0", "-log-level", "warn", "-driver", "exec,docker")
}

// TestE2E_DockerPipeline runs a pipeline whose jobs have an image through a
// dev agent with the Docker driver: the steps run inside containers of the
// test image, share the job's workspace, and no container is left after.
func TestE2E_DockerPipeline(t *testing.T) {
	requireDockerImage(t)
	ag := startDockerAgent(t, t.TempDir())
	spec := `
name: in-docker
jobs:
  build:
    image: ciplat/busybox:test
    resources: { cpu: 200, memory: 64 }
    steps:
      - name: where
        run: echo "pid1=$(cat /proc/1/cmdline | tr '\0' ' ')"; echo artifact > out.txt
      - name: read
        run: cat out.txt
  after:
    needs: [build]
    image: ciplat/busybox:test
    steps: [ "echo second container" ]
`
	file := t.TempDir() + "/docker.yml"
	if err := os.WriteFile(file, []byte(spec), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := cli(t, ag.addr, "pipeline", "run", file)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s\nagent: %s", code, out, errOut, ag.out.String())
	}
	for _, want := range []string{"[build/where] pid1=sh -c", "[build/read] artifact", "[after/step-1] second container"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	c := apiClient(t, ag.addr)
	pid := idRe.FindString(out)
	p, _, err := c.Pipeline(context.Background(), pid, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The driver removes a finished job's container in the background,
	// right after the job's end: poll for that, with a deadline.
	deadline := time.Now().Add(10 * time.Second)
	for _, j := range p.Jobs {
		for left := managedContainers(t, j.ID); len(left) > 0; left = managedContainers(t, j.ID) {
			if time.Now().After(deadline) {
				t.Errorf("job %s left containers %v", j.Name, left)
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// TestE2E_DockerAgentKilledMidJob kills the agent with SIGKILL while a job
// runs in a container, restarts it on the same data dir, and checks that
// the job's container is reaped and the job is accounted for (rescheduled:
// the lost attempt uses no retry).
func TestE2E_DockerAgentKilledMidJob(t *testing.T) {
	requireDockerImage(t)
	dataDir := t.TempDir()
	ag := startDockerAgent(t, dataDir)
	c := apiClient(t, ag.addr)
	ctx := context.Background()
	p, err := c.SubmitPipeline(ctx, []byte("name: killed\njobs:\n  long:\n    image: ciplat/busybox:test\n    retry: { attempts: 1, backoff: 100ms }\n    steps:\n      - name: wait\n        run: |\n          echo started $CIPLAT_ATTEMPT\n          if [ \"$CIPLAT_ATTEMPT\" = 1 ]; then sleep 120; fi\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	waitLine(t, c, p.ID, "started 1")
	jobID := p.JobIDs[0]
	if n := len(managedContainers(t, jobID)); n != 1 {
		t.Fatalf("%d containers for the running job, want 1", n)
	}
	_ = ag.cmd.Process.Signal(syscall.SIGKILL)
	<-ag.done

	ag2 := startDockerAgent(t, dataDir)
	c2 := apiClient(t, ag2.addr)
	got := waitPipelineDone(t, c2, p.ID)
	if got.State != api.StateSucceeded || got.Jobs[0].Attempt != 2 {
		t.Fatalf("after restart: pipeline %s, attempt %d (%s)", got.State, got.Jobs[0].Attempt, got.Jobs[0].Reason)
	}
	deadline := time.Now().Add(30 * time.Second)
	for len(managedContainers(t, jobID)) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("containers of the killed job were not reaped: %v", managedContainers(t, jobID))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitLine follows a pipeline's logs until a line equals want.
func waitLine(t *testing.T, c *api.Client, pipelineID, want string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	seen := errFound
	err := c.PipelineLogs(ctx, pipelineID, &api.LogOptions{Follow: true}, func(e *api.LogEntry) error {
		if e.Line == want {
			return seen
		}
		return nil
	})
	if err != seen {
		t.Fatalf("never saw %q: %v", want, err)
	}
}

var errFound = &foundErr{}

type foundErr struct{}

func (*foundErr) Error() string { return "found" }

// waitPipelineDone waits with blocking queries until the pipeline ended.
func waitPipelineDone(t *testing.T, c *api.Client, id string) *api.Pipeline {
	t.Helper()
	var idx uint64
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		p, meta, err := c.Pipeline(context.Background(), id, &api.QueryOptions{WaitIndex: idx, WaitTime: 10 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		if api.TerminalState(p.State) {
			return p
		}
		idx = meta.LastIndex
	}
	t.Fatalf("pipeline %s did not end", id)
	return nil
}

// BenchmarkDockerOverhead compares submit → SUCCEEDED of a one-step `true`
// job in the Docker driver with a bare `docker run --rm IMAGE true` of the
// same image, in the same run (median of 20 each; ratio reported).
func BenchmarkDockerOverhead(b *testing.B) {
	requireDockerImage(b)
	_, c := benchAgent(b, true, "docker")
	const n = 20
	bare := make([]time.Duration, 0, n)
	via := make([]time.Duration, 0, n)
	spec := []byte("name: overhead\njobs:\n  a:\n    image: " + testImage + "\n    driver: docker\n    steps: [ 'true' ]\n")
	b.ResetTimer()
	for i := 0; i < n; i++ {
		start := time.Now()
		if out, err := exec.Command("docker", "run", "--rm", testImage, "true").CombinedOutput(); err != nil {
			b.Fatalf("docker run: %v %s", err, out)
		}
		bare = append(bare, time.Since(start))
		start = time.Now()
		p, err := c.SubmitPipeline(context.Background(), spec, nil)
		if err != nil {
			b.Fatal(err)
		}
		if got := waitDone(b, c, p.ID); got.State != api.StateSucceeded {
			b.Fatalf("pipeline %s: %s", got.State, got.Jobs[0].Reason)
		}
		via = append(via, time.Since(start))
	}
	mb, mv := percentile(bare, 0.5), percentile(via, 0.5)
	b.ReportMetric(float64(mb.Microseconds())/1000, "docker-run-p50-ms")
	b.ReportMetric(float64(mv.Microseconds())/1000, "ciplat-p50-ms")
	b.ReportMetric(float64(mv)/float64(mb), "ratio")
}
