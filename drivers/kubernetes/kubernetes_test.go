package kubernetes_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"

	"github.com/ciplat/ciplat/drivers"
	"github.com/ciplat/ciplat/drivers/drivertest"
	"github.com/ciplat/ciplat/drivers/kubernetes"
)

// TestDriver_Conformance runs the shared suite as the user ciplat-driver,
// who may do only what deploy/kubernetes/rbac.yaml grants.
func TestDriver_Conformance(t *testing.T) {
	c := needCluster(t)
	ws := c.workspace(t)
	waitHealthy(t, newDriver(t, c.driver, kubernetes.Config{Workspace: ws}))
	drivertest.Run(t, func(t *testing.T) drivers.Driver {
		// Every driver talks to the same namespace and, on kwok, the same
		// workspace root: a second call in one subtest is a restarted agent.
		return newDriver(t, c.driver, kubernetes.Config{Workspace: ws, KillGrace: 500 * time.Millisecond})
	}, drivertest.Options{Image: testImage, HostProcesses: c.kwok, Timeout: 60 * time.Second})
}

// waitHealthy waits until d's fingerprint is healthy: RBAC objects just
// applied take a moment to reach the API server's authorizer.
func waitHealthy(t testing.TB, d *kubernetes.Driver) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		fp := d.Fingerprint(t.Context())
		if fp.Healthy {
			t.Logf("kubernetes %s: %v", fp.Version, fp.Attributes)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("driver not healthy after 20s: %s", fp.Reason)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// create creates a worker, destroyed at cleanup.
func create(t *testing.T, d *kubernetes.Driver, cfg drivers.WorkerConfig) *drivers.WorkerHandle {
	t.Helper()
	h, err := d.CreateWorker(t.Context(), cfg)
	if err != nil {
		t.Fatalf("CreateWorker(%s): %v", cfg.ID, err)
	}
	t.Cleanup(func() { d.DestroyWorker(context.Background(), h) })
	return h
}

// TestDriver_CreateWorker_podShape: the Pod the API server holds carries
// the labels, the owner annotations, the resources and the security
// settings the driver documents.
func TestDriver_CreateWorker_podShape(t *testing.T) {
	c := needCluster(t)
	node := randID("node")
	d := newDriver(t, c.driver, kubernetes.Config{Workspace: c.workspace(t), NodeID: node})
	cfg := drivers.WorkerConfig{ID: randID("shape"), JobID: "job-1", JobName: "build", PipelineID: "pipe-1", NodeID: node,
		Image: testImage, CPU: 250, MemoryMB: 64, Env: map[string]string{"FROM_WORKER": "yes"}}
	h := create(t, d, cfg)
	p, err := c.cs.CoreV1().Pods("ciplat").Get(t.Context(), h.State["pod"], metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get pod %s: %v", h.State["pod"], err)
	}
	if !strings.HasPrefix(p.Name, "ciplat-"+cfg.ID+"-") || p.Status.Phase != corev1.PodRunning {
		t.Errorf("pod %s phase %s", p.Name, p.Status.Phase)
	}
	for k, v := range map[string]string{"ciplat.io/managed": "true", "ciplat.io/alloc-id": cfg.ID, "ciplat.io/job-id": "job-1", "ciplat.io/node-id": node} {
		if p.Labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, p.Labels[k], v)
		}
	}
	if p.Annotations["ciplat.io/job-name"] != "build" {
		t.Errorf("annotations %v", p.Annotations)
	}
	ctr := p.Spec.Containers[0]
	if got := ctr.Resources.Limits.Cpu().MilliValue(); got != 250 {
		t.Errorf("cpu limit %dm, want 250m", got)
	}
	if got := ctr.Resources.Requests.Memory().Value(); got != 64<<20 {
		t.Errorf("memory request %d, want 64Mi", got)
	}
	if sc := ctr.SecurityContext; sc == nil || sc.Privileged == nil || *sc.Privileged || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Errorf("security context %+v", sc)
	}
	hs, err := d.ListWorkers(t.Context())
	if err != nil || len(hs) != 1 || hs[0].ID != cfg.ID {
		t.Errorf("ListWorkers of %s = %v, %v; want only %s", node, hs, err, cfg.ID)
	}
}

// TestDriver_CreateWorker_unschedulable: a Pod no node can take fails the
// create with the scheduler's reason, promptly, and is deleted.
func TestDriver_CreateWorker_unschedulable(t *testing.T) {
	c := needCluster(t)
	d := newDriver(t, c.driver, kubernetes.Config{Workspace: c.workspace(t), UnschedulableGrace: -1})
	id := randID("unsched")
	start := time.Now()
	_, err := d.CreateWorker(t.Context(), drivers.WorkerConfig{ID: id, Image: testImage, CPU: 100_000_000})
	if err == nil || !strings.Contains(err.Error(), "unschedulable") || !strings.Contains(err.Error(), "Insufficient cpu") {
		t.Fatalf("CreateWorker asking 100000 CPUs: %v; want unschedulable: ... Insufficient cpu", err)
	}
	if took := time.Since(start); took > 20*time.Second {
		t.Errorf("took %v to fail", took)
	}
	t.Logf("after %v: %v", time.Since(start), err)
	if err := d.RecoverWorker(t.Context(), &drivers.WorkerHandle{ID: id}); !errors.Is(err, drivers.ErrWorkerNotFound) {
		t.Errorf("the unschedulable Pod was left behind: RecoverWorker = %v", err)
	}

	// With a grace, the driver waits that long for a node first.
	d = newDriver(t, c.driver, kubernetes.Config{Workspace: c.workspace(t), UnschedulableGrace: time.Second})
	start = time.Now()
	_, err = d.CreateWorker(t.Context(), drivers.WorkerConfig{ID: randID("unsched"), Image: testImage, CPU: 100_000_000})
	took := time.Since(start)
	if err == nil || !strings.Contains(err.Error(), "Insufficient cpu") || !strings.Contains(err.Error(), "for 1s, the unschedulable grace") {
		t.Errorf("with a 1s grace: %v; want unschedulable ... for 1s", err)
	}
	if took < time.Second || took > 15*time.Second {
		t.Errorf("with a 1s grace, failed after %v", took)
	}
}

// TestDriver_RunStep_podDeleted: a Pod deleted from outside while a step
// runs makes the step return at once with ErrWorkerNotFound and the reason.
func TestDriver_RunStep_podDeleted(t *testing.T) {
	c := needCluster(t)
	d := newDriver(t, c.driver, kubernetes.Config{Workspace: c.workspace(t)})
	h := create(t, d, drivers.WorkerConfig{ID: randID("deleted"), Image: testImage})
	rec := drivertest.NewRecorder()
	done := make(chan error, 1)
	go func() {
		_, err := d.RunStep(t.Context(), h, drivers.StepConfig{Name: "sleeps", Run: "echo started; sleep 120"}, rec)
		done <- err
	}()
	if err := rec.WaitLine(t.Context(), drivers.Stdout, "started"); err != nil {
		t.Fatalf("waiting for the step: %v; output:%s", err, rec)
	}
	if err := c.cs.CoreV1().Pods("ciplat").Delete(t.Context(), h.State["pod"], metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, drivers.ErrWorkerNotFound) || !strings.Contains(err.Error(), h.State["pod"]) {
			t.Errorf("RunStep after its Pod was deleted: %v; want ErrWorkerNotFound naming the pod", err)
		}
		t.Logf("RunStep: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("RunStep still running 10s after its Pod was deleted")
	}
	if err := d.RecoverWorker(t.Context(), h); !errors.Is(err, drivers.ErrWorkerNotFound) {
		t.Errorf("RecoverWorker of a deleted Pod: %v", err)
	}
}

// TestDriver_unknownNamespace: a namespace that does not exist makes the
// driver unhealthy and CreateWorker fail, both saying so.
func TestDriver_unknownNamespace(t *testing.T) {
	c := needCluster(t)
	ns := randID("ciplat-none")
	d := newDriver(t, c.admin, kubernetes.Config{Namespace: ns, Workspace: c.workspace(t)})
	fp := d.Fingerprint(t.Context())
	if fp.Healthy || !fp.Detected || !strings.Contains(fp.Reason, "does not exist") || fp.Version == "" {
		t.Errorf("Fingerprint in namespace %s = %+v; want detected, unhealthy, saying it does not exist, with the version", ns, fp)
	}
	start := time.Now()
	_, err := d.CreateWorker(t.Context(), drivers.WorkerConfig{ID: randID("nons"), Image: testImage})
	if err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("CreateWorker in namespace %s: %v; want 'does not exist'", ns, err)
	}
	if took := time.Since(start); took > 20*time.Second {
		t.Errorf("CreateWorker took %v to fail", took)
	}
}

// TestDriver_forbidden: a user RBAC grants nothing gets an unhealthy driver
// and a CreateWorker error that say what to apply.
func TestDriver_forbidden(t *testing.T) {
	c := needCluster(t)
	d := newDriver(t, c.nobody, kubernetes.Config{Workspace: c.workspace(t)})
	fp := d.Fingerprint(t.Context())
	if fp.Healthy || !fp.Detected || !strings.Contains(fp.Reason, "rbac.yaml") {
		t.Errorf("Fingerprint as nobody = %+v; want detected, unhealthy, pointing at rbac.yaml", fp)
	}
	t.Logf("reason: %s", fp.Reason)
	_, err := d.CreateWorker(t.Context(), drivers.WorkerConfig{ID: randID("nobody"), Image: testImage})
	if err == nil || !strings.Contains(err.Error(), "forbidden") {
		t.Errorf("CreateWorker as nobody: %v; want forbidden", err)
	}
	if _, err := d.ListWorkers(t.Context()); err == nil || !strings.Contains(err.Error(), "forbidden") {
		t.Errorf("ListWorkers as nobody: %v; want forbidden", err)
	}
}

// TestDriver_RunStep_evicted: an eviction (the Eviction API, as kubectl
// drain uses) of a Pod whose step runs makes the step return at once with
// ErrWorkerNotFound and the reason.
func TestDriver_RunStep_evicted(t *testing.T) {
	c := needCluster(t)
	d := newDriver(t, c.driver, kubernetes.Config{Workspace: c.workspace(t)})
	h := create(t, d, drivers.WorkerConfig{ID: randID("evicted"), Image: testImage})
	rec := drivertest.NewRecorder()
	done := make(chan error, 1)
	go func() {
		_, err := d.RunStep(t.Context(), h, drivers.StepConfig{Name: "sleeps", Run: "echo started; sleep 120"}, rec)
		done <- err
	}()
	if err := rec.WaitLine(t.Context(), drivers.Stdout, "started"); err != nil {
		t.Fatalf("waiting for the step: %v; output:%s", err, rec)
	}
	ev := &policyv1.Eviction{ObjectMeta: metav1.ObjectMeta{Name: h.State["pod"], Namespace: "ciplat"}}
	if err := c.cs.CoreV1().Pods("ciplat").EvictV1(t.Context(), ev); err != nil {
		t.Fatalf("evict: %v", err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, drivers.ErrWorkerNotFound) || !strings.Contains(err.Error(), "disrupted (EvictionByEvictionAPI)") {
			t.Errorf("RunStep after its Pod was evicted: %v; want ErrWorkerNotFound saying it was evicted", err)
		}
		t.Logf("RunStep: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("RunStep still running 10s after its Pod was evicted")
	}
}

// TestDriver_CreateWorker_imagePull: a Pod whose image cannot be pulled
// fails the create at once with the kubelet's reason, and is deleted. kwok
// pulls nothing, so the test writes the status a kubelet would (on a Pod
// no node takes, so nothing else writes it).
func TestDriver_CreateWorker_imagePull(t *testing.T) {
	c := needCluster(t)
	d := newDriver(t, c.driver, kubernetes.Config{Workspace: c.workspace(t), UnschedulableGrace: time.Minute,
		NodeSelector: map[string]string{"ciplat.io/no-such-pool": "x"}})
	id := randID("pull")
	done := make(chan error, 1)
	go func() {
		_, err := d.CreateWorker(t.Context(), drivers.WorkerConfig{ID: id, Image: "registry.invalid/nope:1"})
		done <- err
	}()
	w, err := c.cs.CoreV1().Pods("ciplat").Watch(t.Context(), metav1.ListOptions{LabelSelector: "ciplat.io/alloc-id=" + id})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	var pod *corev1.Pod
	for pod == nil {
		select {
		case ev := <-w.ResultChan():
			pod, _ = ev.Object.(*corev1.Pod)
		case err := <-done:
			t.Fatalf("CreateWorker returned before its Pod was seen: %v", err)
		case <-time.After(20 * time.Second):
			t.Fatal("no Pod created within 20s")
		}
	}
	// The scheduler writes the status too (Unschedulable): retry on conflict.
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		p, err := c.cs.CoreV1().Pods("ciplat").Get(t.Context(), pod.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "worker", Image: "registry.invalid/nope:1",
			State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ImagePullBackOff", Message: `Back-off pulling image "registry.invalid/nope:1"`}}}}
		_, err = c.cs.CoreV1().Pods("ciplat").UpdateStatus(t.Context(), p, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatalf("write the Pod's status: %v", err)
	}
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "ImagePullBackOff") || !strings.Contains(err.Error(), "registry.invalid/nope:1") {
			t.Errorf("CreateWorker of an image that cannot be pulled: %v; want ImagePullBackOff and the image", err)
		}
		t.Logf("CreateWorker: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("CreateWorker still waiting 10s after ImagePullBackOff")
	}
	if err := d.RecoverWorker(t.Context(), &drivers.WorkerHandle{ID: id}); !errors.Is(err, drivers.ErrWorkerNotFound) {
		t.Errorf("the Pod was left behind: RecoverWorker = %v", err)
	}
}
