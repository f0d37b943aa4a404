package kubernetes_test

import (
	"context"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	k8s "k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/ciplat/ciplat/drivers"
	"github.com/ciplat/ciplat/drivers/kubernetes"
)

// BenchmarkPodRoundTrip measures one worker's life through the driver
// (CreateWorker until Running, DestroyWorker, until the Pod is gone from
// the API server) against the same calls made directly with client-go as
// the same user (create, watch until Running, delete with the same grace
// period, watch until gone), alternating, and reports the p50 and p95 of
// both and the ratio of the p50s. Run it against the local control plane
// with -benchtime 20x or more (make bench-k8s).
func BenchmarkPodRoundTrip(b *testing.B) {
	c := needCluster(b)
	d := newDriver(b, c.driver, kubernetes.Config{Workspace: c.workspace(b)})
	waitHealthy(b, d)
	rc, err := clientcmd.BuildConfigFromFlags("", c.driver)
	if err != nil {
		b.Fatal(err)
	}
	rc.QPS, rc.Burst = 50, 100 // the driver's: client-go's default 5 QPS would be what is measured
	raw, err := k8s.NewForConfig(rc)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	var viaDriver, direct []time.Duration
	for b.Loop() {
		id := randID("bench")
		w := watchPods(b, raw, "ciplat.io/alloc-id="+id)
		start := time.Now()
		h, err := d.CreateWorker(ctx, drivers.WorkerConfig{ID: id, Image: testImage})
		if err != nil {
			b.Fatal(err)
		}
		if err := d.DestroyWorker(ctx, h); err != nil {
			b.Fatal(err)
		}
		waitFor(b, w, watch.Deleted, "")
		viaDriver = append(viaDriver, time.Since(start))
		w.Stop()

		direct = append(direct, directRoundTrip(b, raw, randID("direct")))
	}
	report := func(ds []time.Duration, name string) time.Duration {
		s := slices.Clone(ds)
		slices.Sort(s)
		p50, p95 := s[len(s)/2], s[min(len(s)-1, len(s)*95/100)]
		b.ReportMetric(float64(p50.Microseconds())/1000, name+"-p50-ms")
		b.ReportMetric(float64(p95.Microseconds())/1000, name+"-p95-ms")
		return p50
	}
	dp, cp := report(viaDriver, "driver"), report(direct, "client-go")
	b.ReportMetric(float64(dp)/float64(cp), "driver/client-go-p50")
}

// directRoundTrip is the driver's round trip made with bare client-go:
// the same Pod shape, no informer, no breaker, no cleanup exec.
func directRoundTrip(b *testing.B, cs k8s.Interface, id string) time.Duration {
	ctx := context.Background()
	w := watchPods(b, cs, "ciplat-bench-direct="+id)
	defer w.Stop()
	grace, no := int64(5), false
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "ciplat-" + id + "-", Labels: map[string]string{"ciplat-bench-direct": id}},
		Spec: corev1.PodSpec{
			RestartPolicy:                 corev1.RestartPolicyNever,
			TerminationGracePeriodSeconds: &grace,
			AutomountServiceAccountToken:  &no,
			Containers: []corev1.Container{{Name: "worker", Image: testImage, Command: []string{"sh", "-c", "sleep 3600"},
				SecurityContext: &corev1.SecurityContext{Privileged: &no, AllowPrivilegeEscalation: &no}}},
		},
	}
	start := time.Now()
	p, err := cs.CoreV1().Pods("ciplat").Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		b.Fatal(err)
	}
	waitFor(b, w, watch.Modified, p.Name)
	if err := cs.CoreV1().Pods("ciplat").Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: &grace}); err != nil {
		b.Fatal(err)
	}
	waitFor(b, w, watch.Deleted, "")
	return time.Since(start)
}

// watchPods watches the Pods of namespace ciplat matching selector.
func watchPods(b *testing.B, cs k8s.Interface, selector string) watch.Interface {
	w, err := cs.CoreV1().Pods("ciplat").Watch(context.Background(), metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		b.Fatal(err)
	}
	return w
}

// waitFor waits for an event of type typ: for Modified, until Pod name
// runs; for Deleted, until a Pod is gone. It fails after a minute.
func waitFor(b *testing.B, w watch.Interface, typ watch.EventType, name string) {
	timeout := time.After(time.Minute)
	for {
		select {
		case ev, ok := <-w.ResultChan():
			if !ok {
				b.Fatal("watch closed")
			}
			p, _ := ev.Object.(*corev1.Pod)
			if p == nil {
				continue
			}
			switch {
			case typ == watch.Deleted && ev.Type == watch.Deleted:
				return
			case typ == watch.Modified && p.Name == name && p.Status.Phase == corev1.PodRunning:
				return
			}
		case <-timeout:
			b.Fatalf("no %s event within a minute", typ)
		}
	}
}
