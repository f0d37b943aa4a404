package agent_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
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

// k8sEnv is the local control plane `make k8s-up` starts (see .k8s/env).
type k8sEnv struct{ admin, driver, bin string }

// requireK8s returns the control plane with deploy/kubernetes/rbac.yaml
// applied. Without one the test is skipped with the reason, or fails under
// CI=true, where the control plane is part of the test environment.
func requireK8s(tb testing.TB) k8sEnv {
	tb.Helper()
	e := k8sEnv{os.Getenv("CIPLAT_K8S_KUBECONFIG"), os.Getenv("CIPLAT_K8S_KUBECONFIG_DRIVER"), os.Getenv("CIPLAT_K8S_BIN")}
	why := ""
	if e.admin == "" || e.driver == "" || e.bin == "" {
		why = "CIPLAT_K8S_KUBECONFIG, CIPLAT_K8S_KUBECONFIG_DRIVER or CIPLAT_K8S_BIN is not set"
	} else if out, err := e.kubectl("apply", "-f", "../../deploy/kubernetes/rbac.yaml"); err != nil {
		why = fmt.Sprintf("applying deploy/kubernetes/rbac.yaml: %v: %s", err, out)
	}
	if why != "" {
		if os.Getenv("CI") == "true" {
			tb.Fatalf("CI=true and the Kubernetes control plane is not usable: %s", why)
		}
		tb.Skipf("Kubernetes control plane not usable, skipping (make k8s-up, source .k8s/env; CI=true makes this a failure): %s", why)
	}
	return e
}

// kubectl runs kubectl as the admin.
func (e k8sEnv) kubectl(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, filepath.Join(e.bin, "kubectl"), append([]string{"--kubeconfig", e.admin}, args...)...).CombinedOutput()
	return string(out), err
}

// pods lists the names of the Pods in namespace ciplat matching selector.
func (e k8sEnv) pods(t *testing.T, selector string) []string {
	t.Helper()
	out, err := e.kubectl("get", "pods", "-n", "ciplat", "-l", selector, "-o", "name")
	if err != nil {
		t.Fatalf("kubectl get pods: %v: %s", err, out)
	}
	return strings.Fields(out)
}

// TestE2E_KubernetesPipeline runs a DAG pipeline whose jobs pick the
// kubernetes driver on a dev agent given -kubeconfig (as the unprivileged
// user ciplat-driver): each job runs as a Pod, a job's steps share its
// workspace, a Pod deleted from outside (kubectl delete pod) while its step
// runs makes the job retry, and once the pipeline ends no Pod of it is left.
func TestE2E_KubernetesPipeline(t *testing.T) {
	e := requireK8s(t)
	// On kwok every exec runs on this host: give the workspaces a directory
	// of the test (a real cluster would mount the emptyDir at this path).
	ag := startAgentArgs(t, "agent", "-dev", "-data-dir", t.TempDir(), "-http-addr", "127.0.0.1:0", "-log-level", "warn",
		"-kubeconfig", e.driver, "-k8s-workspace", t.TempDir(), "-node", uniqueNode())
	c := apiClient(t, ag.addr)
	ctx := context.Background()
	spec := `
name: in-k8s
jobs:
  build:
    image: busybox:1.36
    driver: kubernetes
    resources: { cpu: 200, memory: 64 }
    steps:
      - name: write
        run: echo artifact > out.txt
      - name: read
        run: cat out.txt
  test:
    needs: [build]
    image: busybox:1.36
    driver: kubernetes
    retry: { attempts: 1, backoff: 100ms }
    steps:
      - name: wait
        run: |
          echo started $CIPLAT_ATTEMPT
          if [ "$CIPLAT_ATTEMPT" = 1 ]; then sleep 120; fi
          echo done $CIPLAT_ATTEMPT
  lint:
    needs: [build]
    image: busybox:1.36
    driver: kubernetes
    steps: [ "echo lint-ok" ]
`
	p, err := c.SubmitPipeline(ctx, []byte(spec), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !sawLine(c, p.ID, "started 1") {
		got, _, err := c.Pipeline(ctx, p.ID, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, j := range got.Jobs {
			t.Logf("job %s: %s attempt %d: %s %+v", j.Name, j.State, j.Attempt, j.Reason, j.Steps)
		}
		t.Fatalf("never saw %q; pipeline %s; agent: %s", "started 1", got.State, ag.out.String())
	}
	pods := e.pods(t, "ciplat.io/pipeline-id="+p.ID)
	if len(pods) == 0 {
		t.Fatalf("no Pod of pipeline %s while its job runs; agent: %s", p.ID, ag.out.String())
	}
	var testJob string
	got, _, err := c.Pipeline(ctx, p.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, j := range got.Jobs {
		if j.Name == "test" {
			testJob = j.ID
		}
	}
	victims := e.pods(t, "ciplat.io/job-id="+testJob)
	if len(victims) != 1 {
		t.Fatalf("Pods of job test: %v, want 1", victims)
	}
	if out, err := e.kubectl(append([]string{"delete", "-n", "ciplat", "--wait=false"}, victims...)...); err != nil {
		t.Fatalf("kubectl delete %v: %v: %s", victims, err, out)
	}

	done := waitPipelineDone(t, c, p.ID)
	if done.State != api.StateSucceeded {
		t.Fatalf("pipeline %s: %+v; agent: %s", done.State, done.Jobs, ag.out.String())
	}
	for _, j := range done.Jobs {
		if j.Name == "test" {
			if j.Attempt != 2 || len(j.History) == 0 || !strings.Contains(j.History[0].Reason, "pod") {
				t.Errorf("job test: attempt %d, history %+v; want a retry after its Pod was deleted", j.Attempt, j.History)
			} else {
				t.Logf("attempt 1 ended: %s", j.History[0].Reason)
			}
		}
	}
	var lines []string
	err = c.PipelineLogs(ctx, p.ID, nil, func(le *api.LogEntry) error {
		lines = append(lines, le.JobName+"/"+le.Step+": "+le.Line)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	all := strings.Join(lines, "\n")
	for _, want := range []string{"build/read: artifact", "test/wait: done 2", "lint/step-1: lint-ok"} {
		if !strings.Contains(all, want) {
			t.Errorf("logs lack %q:\n%s", want, all)
		}
	}

	// Deleted Pods go after their grace period: wait, bounded.
	deadline := time.Now().Add(60 * time.Second)
	for {
		left := e.pods(t, "ciplat.io/pipeline-id="+p.ID)
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Pods of pipeline %s left 60s after it ended: %v", p.ID, left)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// sawLine follows a pipeline's logs until a line equals want (true), or the
// pipeline ends or a minute passes (false).
func sawLine(c *api.Client, pipelineID, want string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return c.PipelineLogs(ctx, pipelineID, &api.LogOptions{Follow: true}, func(e *api.LogEntry) error {
		if e.Line == want {
			return errFound
		}
		return nil
	}) == errFound
}

// TestE2E_KubernetesPortForward: `ciplat job port-forward JOB 0:8080`
// finds the running job's Pod through the HTTP API and forwards a local
// port to the Pod's port 8080 with the user's kubeconfig, until Ctrl-C. On
// kwok a PortForward object makes the Pod's port reach an echo server of
// the test.
func TestE2E_KubernetesPortForward(t *testing.T) {
	e := requireK8s(t)
	ag := startAgentArgs(t, "agent", "-dev", "-data-dir", t.TempDir(), "-http-addr", "127.0.0.1:0", "-log-level", "warn",
		"-kubeconfig", e.driver, "-k8s-workspace", t.TempDir(), "-node", uniqueNode())
	c := apiClient(t, ag.addr)
	ctx := context.Background()
	p, err := c.SubmitPipeline(ctx, []byte("name: pf\njobs:\n  serve:\n    image: busybox:1.36\n    driver: kubernetes\n    steps: [ 'echo serving; sleep 120' ]\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.CancelPipeline(context.Background(), p.ID) })
	if !sawLine(c, p.ID, "serving") {
		t.Fatalf("the job never started; agent: %s", ag.out.String())
	}
	jobID := p.JobIDs[0]
	pods := e.pods(t, "ciplat.io/job-id="+jobID)
	if len(pods) != 1 {
		t.Fatalf("Pods of the job: %v", pods)
	}
	pod := strings.TrimPrefix(pods[0], "pod/")

	echo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	go func() {
		for {
			conn, err := echo.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				line, _ := bufio.NewReader(conn).ReadString('\n')
				fmt.Fprintf(conn, "echo %s", line)
			}()
		}
	}()
	manifest := fmt.Sprintf(`{"apiVersion": "kwok.x-k8s.io/v1alpha1", "kind": "PortForward",
 "metadata": {"name": %q, "namespace": "ciplat"},
 "spec": {"forwards": [{"ports": [8080], "target": {"port": %d, "address": "127.0.0.1"}}]}}`, pod, echo.Addr().(*net.TCPAddr).Port)
	apply := exec.Command(filepath.Join(e.bin, "kubectl"), "--kubeconfig", e.admin, "apply", "-f", "-")
	apply.Stdin = strings.NewReader(manifest)
	if out, err := apply.CombinedOutput(); err != nil {
		t.Skipf("no kwok PortForward objects here (a real cluster?): %v: %s", err, out)
	}
	t.Cleanup(func() { e.kubectl("delete", "-n", "ciplat", "portforward.kwok.x-k8s.io", pod) })

	cmd := exec.Command(binPath, "job", "port-forward", "-kubeconfig", e.driver, jobID[:8], "0:8080")
	cmd.Env = append(os.Environ(), "CIPLAT_ADDR="+ag.addr)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	lines := bufio.NewScanner(stdout)
	if !lines.Scan() {
		cmd.Wait()
		t.Fatalf("port-forward printed nothing; stderr: %s", stderr.String())
	}
	t.Log(lines.Text())
	m := regexp.MustCompile(`^Forwarding from 127\.0\.0\.1:(\d+) -> 8080 \(job serve, worker [0-9a-f]+\)$`).FindStringSubmatch(lines.Text())
	if m == nil {
		t.Fatalf("first line %q, want Forwarding from 127.0.0.1:PORT -> 8080 (job serve, worker ID)", lines.Text())
	}
	// kwok reads PortForward objects through an informer: poll, bounded.
	deadline := time.Now().Add(20 * time.Second)
	var got string
	for {
		got, err = echoRoundTrip("127.0.0.1:"+m[1], "ping\n")
		if err == nil && got == "echo ping\n" || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if got != "echo ping\n" {
		t.Errorf("through the forward: %q, %v; want %q", got, err, "echo ping\n")
	}
	cmd.Process.Signal(syscall.SIGINT)
	if err := cmd.Wait(); err != nil {
		t.Errorf("port-forward after Ctrl-C: %v; stderr: %s", err, stderr.String())
	}

	// A job that is not running has nothing to forward to.
	out, errOut, code := cli(t, ag.addr, "job", "port-forward", "-kubeconfig", e.driver, "nosuchjob", "8080")
	if code == 0 {
		t.Errorf("port-forward to a missing job: exit 0: %s %s", out, errOut)
	}
}

// echoRoundTrip sends msg to addr and reads one line back.
func echoRoundTrip(addr, msg string) (string, error) {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write([]byte(msg)); err != nil {
		return "", err
	}
	return bufio.NewReader(conn).ReadString('\n')
}

// uniqueNode names a test's agent: Pods are labelled with the node name, and
// an agent reaps the Pods of its name that it does not know, so agents of
// different tests (or runs) sharing the namespace must not share one.
func uniqueNode() string {
	return fmt.Sprintf("k8s-e2e-%d-%d", os.Getpid(), time.Now().UnixNano())
}

// TestE2E_KubernetesAgentKilledMidJob kills the agent with SIGKILL while a
// job runs in a Pod, restarts it on the same data dir and node name, and
// checks that the job is retried and the first attempt's Pod reaped.
func TestE2E_KubernetesAgentKilledMidJob(t *testing.T) {
	e := requireK8s(t)
	dataDir, ws, node := t.TempDir(), t.TempDir(), uniqueNode()
	start := func() *agentProc {
		return startAgentArgs(t, "agent", "-dev", "-data-dir", dataDir, "-http-addr", "127.0.0.1:0", "-log-level", "warn",
			"-kubeconfig", e.driver, "-k8s-workspace", ws, "-node", node)
	}
	ag := start()
	c := apiClient(t, ag.addr)
	p, err := c.SubmitPipeline(context.Background(), []byte("name: killed\njobs:\n  long:\n    image: busybox:1.36\n    driver: kubernetes\n    retry: { attempts: 1, backoff: 100ms }\n    steps:\n      - name: wait\n        run: |\n          echo started $CIPLAT_ATTEMPT\n          if [ \"$CIPLAT_ATTEMPT\" = 1 ]; then sleep 120; fi\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !sawLine(c, p.ID, "started 1") {
		t.Fatalf("the job never started; agent: %s", ag.out.String())
	}
	jobID := p.JobIDs[0]
	if n := len(e.pods(t, "ciplat.io/job-id="+jobID)); n != 1 {
		t.Fatalf("%d Pods for the running job, want 1", n)
	}
	_ = ag.cmd.Process.Signal(syscall.SIGKILL)
	<-ag.done

	ag2 := start()
	got := waitPipelineDone(t, apiClient(t, ag2.addr), p.ID)
	if got.State != api.StateSucceeded || got.Jobs[0].Attempt != 2 {
		t.Fatalf("after restart: pipeline %s, attempt %d (%s)", got.State, got.Jobs[0].Attempt, got.Jobs[0].Reason)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		left := e.pods(t, "ciplat.io/job-id="+jobID)
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Pods of the killed agent's job were not reaped: %v", left)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
