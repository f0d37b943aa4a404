package kubernetes

import (
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/ciplat/ciplat/drivers"
)

// testDriver is a Driver with its defaults and no client, for the pure
// parts (the Pod's shape).
func testDriver(cfg Config) *Driver { return newDriver(cfg, nil, nil) }

func TestDriver_podSpec(t *testing.T) {
	d := testDriver(Config{NodeSelector: map[string]string{"pool": "ci"}})
	cfg := drivers.WorkerConfig{
		ID: "Alloc_1.x", JobID: "job-1", JobName: "build", PipelineID: "pipe-1", NodeID: "node 1 with spaces",
		Image: "busybox:1.36", CPU: 250, MemoryMB: 64,
		Env:    map[string]string{"FROM_WORKER": "yes", "CI": "overridden"},
		Labels: map[string]string{"team": "platform", "ciplat.io/managed": "false", "bad key!": "x"},
	}
	p := d.podSpec(cfg)
	if p.GenerateName != "ciplat-alloc-1-x-" || p.Namespace != "ciplat" {
		t.Errorf("generateName %q in %q", p.GenerateName, p.Namespace)
	}
	want := map[string]string{
		"ciplat.io/managed": "true", "ciplat.io/alloc-id": "Alloc_1.x", "ciplat.io/job-id": "job-1",
		"ciplat.io/pipeline-id": "pipe-1", "team": "platform",
	}
	for k, v := range want {
		if p.Labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, p.Labels[k], v)
		}
	}
	if n := p.Labels["ciplat.io/node-id"]; !strings.HasPrefix(n, "h-") || n != labelValue(cfg.NodeID) {
		t.Errorf("node label of an invalid label value = %q, want its hash", n)
	}
	if _, ok := p.Labels["bad key!"]; ok {
		t.Errorf("an invalid label key was copied")
	}
	if p.Annotations["ciplat.io/node-id"] != cfg.NodeID || p.Annotations["ciplat.io/job-name"] != "build" {
		t.Errorf("annotations %v", p.Annotations)
	}
	if !managedSelector(cfg.NodeID).Matches(labelsOf(p)) {
		t.Errorf("the node's selector %s does not select its Pod", managedSelector(cfg.NodeID))
	}
	c := p.Spec.Containers[0]
	if c.Image != "busybox:1.36" || c.Name != "worker" || !slices.Equal(c.Command, []string{"sh", "-c", keepAlive}) {
		t.Errorf("container %s image %s command %q", c.Name, c.Image, c.Command)
	}
	for _, rl := range []corev1.ResourceList{c.Resources.Requests, c.Resources.Limits} {
		if q := rl[corev1.ResourceCPU]; q.Cmp(resource.MustParse("250m")) != 0 {
			t.Errorf("cpu %s, want 250m", q.String())
		}
		if q := rl[corev1.ResourceMemory]; q.Cmp(resource.MustParse("64Mi")) != 0 {
			t.Errorf("memory %s, want 64Mi", q.String())
		}
	}
	env := map[string]string{}
	for _, e := range c.Env {
		env[e.Name] = e.Value
	}
	if env["FROM_WORKER"] != "yes" || env["CI"] != "overridden" || env["CIPLAT_WORKSPACE"] != "/workspace/Alloc_1.x" || env["CIPLAT_JOB_NAME"] != "build" {
		t.Errorf("env %v", env)
	}
	sc := c.SecurityContext
	if sc == nil || *sc.Privileged || *sc.AllowPrivilegeEscalation || sc.RunAsNonRoot != nil {
		t.Errorf("security context %+v: want unprivileged, no escalation, runAsNonRoot unset by default", sc)
	}
	if *p.Spec.AutomountServiceAccountToken || p.Spec.RestartPolicy != corev1.RestartPolicyNever || p.Spec.NodeSelector["pool"] != "ci" {
		t.Errorf("pod spec %+v", p.Spec)
	}
	if m := c.VolumeMounts; len(m) != 1 || m[0].MountPath != "/workspace" || p.Spec.Volumes[0].EmptyDir == nil {
		t.Errorf("workspace mount %+v, volumes %+v", m, p.Spec.Volumes)
	}

	nonRoot := testDriver(Config{RunAsNonRoot: true}).podSpec(cfg).Spec.Containers[0].SecurityContext
	if nonRoot.RunAsNonRoot == nil || !*nonRoot.RunAsNonRoot || nonRoot.Capabilities == nil {
		t.Errorf("RunAsNonRoot: security context %+v", nonRoot)
	}
	agent := testDriver(Config{NodeID: "agent-a"})
	if got := agent.podSpec(cfg).Labels["ciplat.io/node-id"]; got != "agent-a" || !managedSelector("agent-a").Matches(labels.Set(agent.podSpec(cfg).Labels)) {
		t.Errorf("with Config.NodeID, the node label = %q, want the agent's agent-a", got)
	}
	if r := testDriver(Config{}).podSpec(drivers.WorkerConfig{ID: "x", Image: "i"}).Spec.Containers[0].Resources; r.Limits != nil || r.Requests != nil {
		t.Errorf("no resources asked, got %+v", r)
	}
}

func labelsOf(p *corev1.Pod) labels.Set { return labels.Set(p.Labels) }

func TestValidID(t *testing.T) {
	for _, id := range []string{"a", "dt-0123abcd", "Alloc_1.x", "6f1c0b7e-2f55-4c59-9f0e-9d1f2e3a4b5c"} {
		if err := validID(id); err != nil {
			t.Errorf("validID(%q) = %v", id, err)
		}
	}
	for _, id := range []string{"", "-x", "x-", "a/b", "a b", "..", "a..b", strings.Repeat("a", 64)} {
		if validID(id) == nil {
			t.Errorf("validID(%q) = nil", id)
		}
	}
}

func TestEnvArgs(t *testing.T) {
	p := &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{{
		Name: containerName,
		Env:  []corev1.EnvVar{{Name: "A", Value: "pod"}, {Name: "B", Value: "pod b"}, {Name: "S", ValueFrom: &corev1.EnvVarSource{}}},
	}}}}
	got := envArgs(p, map[string]string{"A": "step", "C": ""})
	if want := []string{"A=step", "B=pod b", "C="}; !slices.Equal(got, want) {
		t.Errorf("envArgs = %q, want %q", got, want)
	}
}

func TestDescribe(t *testing.T) {
	now := metav1.NewTime(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	pod := func(mut func(p *corev1.Pod)) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "ciplat-x-abcde"}}
		mut(p)
		return p
	}
	running := func(p *corev1.Pod) {
		p.Spec.NodeName = "n1"
		p.Status.Phase = corev1.PodRunning
		p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: containerName, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}}
	}
	cases := []struct {
		name  string
		pod   *corev1.Pod
		state podState
		want  string
	}{
		{"new", pod(func(p *corev1.Pod) { p.Status.Phase = corev1.PodPending }), podStarting, "not scheduled yet"},
		{"running", pod(running), podRunning, ""},
		{"unschedulable", pod(func(p *corev1.Pod) {
			p.Status.Phase = corev1.PodPending
			p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: "Unschedulable",
				Message: "0/1 nodes are available: 1 Insufficient cpu.", LastTransitionTime: now}}
		}), podStarting, "pod ciplat-x-abcde unschedulable: 0/1 nodes are available: 1 Insufficient cpu."},
		{"image pull", pod(func(p *corev1.Pod) {
			p.Spec.NodeName = "n1"
			p.Status.Phase = corev1.PodPending
			p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: containerName, Image: "nope:1", State: corev1.ContainerState{
				Waiting: &corev1.ContainerStateWaiting{Reason: "ImagePullBackOff", Message: "Back-off pulling image"}}}}
		}), podGone, `cannot start its container (image "nope:1"): ImagePullBackOff: Back-off pulling image`},
		{"pulling", pod(func(p *corev1.Pod) {
			p.Spec.NodeName = "n1"
			p.Status.Phase = corev1.PodPending
			p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: containerName, State: corev1.ContainerState{
				Waiting: &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}}}}
		}), podStarting, "is ContainerCreating"},
		{"evicted", pod(func(p *corev1.Pod) {
			running(p)
			p.Status.Phase = corev1.PodFailed
			p.Status.Reason, p.Status.Message = "Evicted", "The node was low on resource: memory."
		}), podGone, "failed: Evicted: The node was low on resource: memory."},
		{"disrupted", pod(func(p *corev1.Pod) {
			running(p)
			p.Status.Conditions = []corev1.PodCondition{{Type: corev1.DisruptionTarget, Status: corev1.ConditionTrue, Reason: "DeletionByTaintManager", Message: "Taint manager: deleting due to NoExecute taint"}}
		}), podGone, "disrupted (DeletionByTaintManager)"},
		{"deleting", pod(func(p *corev1.Pod) { running(p); p.DeletionTimestamp = &now }), podGone, "is being deleted"},
		{"container exited", pod(func(p *corev1.Pod) {
			running(p)
			p.Status.ContainerStatuses[0].State = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 137, Reason: "OOMKilled"}}
		}), podGone, "container exited with code 137 (OOMKilled)"},
	}
	for _, c := range cases {
		st := describe(c.pod)
		if st.state != c.state || !strings.Contains(st.reason, c.want) {
			t.Errorf("%s: describe = %v %q, want %v containing %q", c.name, st.state, st.reason, c.state, c.want)
		}
		if c.name == "unschedulable" && !st.unschedulable.Equal(now.Time) {
			t.Errorf("unschedulable since %v, want %v", st.unschedulable, now)
		}
	}
}

func TestPodPrefix(t *testing.T) {
	if got := podPrefix(strings.Repeat("A", 63)); len(got) > 50 || !strings.HasPrefix(got, "ciplat-aaa") || !strings.HasSuffix(got, "a-") {
		t.Errorf("podPrefix of a long ID = %q", got)
	}
}
