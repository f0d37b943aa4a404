package agent_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
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
		"-kubeconfig", e.driver, "-k8s-workspace", t.TempDir())
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
