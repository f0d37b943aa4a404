package kubernetes

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/ciplat/ciplat/drivers"
)

// The labels every worker Pod carries. Label values are limited to 63
// characters of [A-Za-z0-9_.-]; a value that does not fit is replaced by a
// hash (see labelValue), and the annotations below keep the originals.
const (
	labelManaged  = "ciplat.io/managed"  // "true": ciplat owns it
	labelAllocID  = "ciplat.io/alloc-id" // the worker ID (the allocation)
	labelJobID    = "ciplat.io/job-id"
	labelNodeID   = "ciplat.io/node-id"
	labelPipeline = "ciplat.io/pipeline-id"
)

// The owner annotations: who the Pod is for, unabridged.
const (
	annoAllocID  = "ciplat.io/alloc-id"
	annoJobID    = "ciplat.io/job-id"
	annoJobName  = "ciplat.io/job-name"
	annoNodeID   = "ciplat.io/node-id"
	annoPipeline = "ciplat.io/pipeline-id"
)

// The WorkerHandle.State keys. They are informational: the driver always
// finds a worker's Pod by its alloc-id label, so a tampered handle cannot
// point it at another Pod.
const (
	statePod       = "pod"
	stateNamespace = "namespace"
	stateImage     = "image"
	stateNode      = "node" // the Kubernetes node the Pod runs on
)

// containerName is the worker Pod's one container.
const containerName = "worker"

// keepAlive is the container's command: a shell that sleeps until the Pod
// is deleted, so every step is an exec beside it. It exits at once on
// SIGTERM (a Pod deletion), which a PID 1 without a trap would ignore for
// the whole grace period.
const keepAlive = `trap 'exit 0' TERM; while :; do sleep 3600 & wait; done`

// validID checks that id can be a label value and a directory name: 1-63
// characters of [A-Za-z0-9_.-], starting and ending with a letter or digit.
func validID(id string) error {
	if errs := validation.IsValidLabelValue(id); id == "" || len(errs) > 0 || strings.Contains(id, "..") {
		return fmt.Errorf("kubernetes: worker ID %q: want 1-63 characters of letters, digits, '_', '.' and '-', starting and ending with a letter or digit", id)
	}
	return nil
}

// labelValue returns s when it is a valid label value, else "h-" and a hash
// of s: deterministic, so selectors on it still work.
func labelValue(s string) string {
	if len(validation.IsValidLabelValue(s)) == 0 {
		return s
	}
	sum := sha256.Sum256([]byte(s))
	return "h-" + hex.EncodeToString(sum[:16])
}

// managedSelector selects the Pods this driver owns: all of ciplat's in the
// namespace, or only node's when node is set.
func managedSelector(node string) labels.Selector {
	set := labels.Set{labelManaged: "true"}
	if node != "" {
		set[labelNodeID] = labelValue(node)
	}
	return labels.SelectorFromSet(set)
}

// allocSelector selects worker id's Pods.
func allocSelector(id string) string {
	return labels.SelectorFromSet(labels.Set{labelManaged: "true", labelAllocID: id}).String()
}

// nodeLabel is the node a worker's Pod is labelled with: Config.NodeID
// when set, so the informer and ListWorkers of this agent select it (the
// agent passes its node name, which it knows before the client has loaded
// its node ID), else WorkerConfig.NodeID. The annotation keeps the latter.
func (d *Driver) nodeLabel(cfg drivers.WorkerConfig) string {
	if d.cfg.NodeID != "" {
		return d.cfg.NodeID
	}
	return cfg.NodeID
}

// podPrefix is the generateName of worker id's Pod: ciplat-<id>-, the ID
// lowercased, other characters than [a-z0-9-] as '-', and cut to keep
// names short; the API server appends 5 random characters.
func podPrefix(id string) string {
	b := []byte(strings.ToLower(id))
	for i, c := range b {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			b[i] = '-'
		}
	}
	if len(b) > 40 {
		b = b[:40]
	}
	return "ciplat-" + strings.Trim(string(b), "-") + "-"
}

// workspaceDir is worker id's workspace, as its steps see it.
func (d *Driver) workspaceDir(id string) string { return path.Join(d.cfg.Workspace, id) }

// controlDir holds worker id's control files (the running step's PID).
func (d *Driver) controlDir(id string) string { return path.Join(d.cfg.Workspace, ".ciplat", id) }

// podSpec returns the Pod of worker cfg (not yet created).
func (d *Driver) podSpec(cfg drivers.WorkerConfig) *corev1.Pod {
	lbl := make(map[string]string, len(cfg.Labels)+5)
	for k, v := range cfg.Labels {
		if len(validation.IsQualifiedName(k)) == 0 && len(validation.IsValidLabelValue(v)) == 0 {
			lbl[k] = v
		}
	}
	lbl[labelManaged] = "true"
	lbl[labelAllocID] = labelValue(cfg.ID)
	lbl[labelJobID] = labelValue(cfg.JobID)
	lbl[labelNodeID] = labelValue(d.nodeLabel(cfg))
	lbl[labelPipeline] = labelValue(cfg.PipelineID)

	no, yes := false, true
	sc := &corev1.SecurityContext{
		Privileged:               &no,
		AllowPrivilegeEscalation: &no,
		SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
	if d.cfg.RunAsNonRoot {
		sc.RunAsNonRoot = &yes
		sc.Capabilities = &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}
	}
	sc.RunAsUser = d.cfg.RunAsUser

	res := corev1.ResourceRequirements{}
	if cfg.CPU > 0 || cfg.MemoryMB > 0 {
		res.Requests, res.Limits = corev1.ResourceList{}, corev1.ResourceList{}
	}
	if cfg.CPU > 0 {
		q := *resource.NewMilliQuantity(int64(cfg.CPU), resource.DecimalSI)
		res.Requests[corev1.ResourceCPU], res.Limits[corev1.ResourceCPU] = q, q
	}
	if cfg.MemoryMB > 0 {
		q := *resource.NewQuantity(int64(cfg.MemoryMB)<<20, resource.BinarySI)
		res.Requests[corev1.ResourceMemory], res.Limits[corev1.ResourceMemory] = q, q
	}

	grace := int64(d.cfg.DeleteGrace.Seconds())
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName: podPrefix(cfg.ID),
			Namespace:    d.cfg.Namespace,
			Labels:       lbl,
			Annotations: map[string]string{
				annoAllocID:  cfg.ID,
				annoJobID:    cfg.JobID,
				annoJobName:  cfg.JobName,
				annoNodeID:   cfg.NodeID,
				annoPipeline: cfg.PipelineID,
			},
		},
		Spec: corev1.PodSpec{
			RestartPolicy:                 corev1.RestartPolicyNever,
			TerminationGracePeriodSeconds: &grace,
			AutomountServiceAccountToken:  &no, // a job gets no credentials of the cluster
			EnableServiceLinks:            &no,
			NodeSelector:                  d.cfg.NodeSelector,
			Containers: []corev1.Container{{
				Name:            containerName,
				Image:           cfg.Image,
				Command:         []string{"sh", "-c", keepAlive},
				Env:             podEnv(d.workerEnv(cfg)),
				WorkingDir:      d.cfg.Workspace,
				Resources:       res,
				SecurityContext: sc,
				VolumeMounts:    []corev1.VolumeMount{{Name: "workspace", MountPath: d.cfg.Workspace}},
			}},
			Volumes: []corev1.Volume{{
				Name:         "workspace",
				VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}},
			}},
		},
	}
}

// workerEnv is the worker's own environment, over the image's:
// drivers.WorkerEnv (ciplat's variables, then cfg.Env, later entries
// winning).
func (d *Driver) workerEnv(cfg drivers.WorkerConfig) map[string]string {
	return drivers.WorkerEnv(cfg, d.workspaceDir(cfg.ID))
}

// podEnv renders env as the container's env, sorted by name.
func podEnv(env map[string]string) []corev1.EnvVar {
	out := make([]corev1.EnvVar, 0, len(env))
	for k, v := range env {
		out = append(out, corev1.EnvVar{Name: k, Value: v})
	}
	slices.SortFunc(out, func(a, b corev1.EnvVar) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// checkEnv rejects names and values an environment cannot carry; where
// says which map a bad entry came from.
func checkEnv(env map[string]string, where string) error {
	for k, v := range env {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			return fmt.Errorf("kubernetes: %s: variable name %q: want a non-empty name without '=' or NUL", where, k)
		}
		if strings.ContainsRune(v, 0) {
			return fmt.Errorf("kubernetes: %s: value of %s contains a NUL byte, which an environment cannot carry", where, k)
		}
	}
	return nil
}

// envArgs renders the worker's env (read back from its Pod) with step's
// over it as `env` arguments, sorted, so a step's command line is
// reproducible.
func envArgs(pod *corev1.Pod, step map[string]string) []string {
	env := map[string]string{}
	for _, c := range pod.Spec.Containers {
		if c.Name != containerName {
			continue
		}
		for _, e := range c.Env {
			if e.ValueFrom == nil {
				env[e.Name] = e.Value
			}
		}
	}
	for k, v := range step {
		env[k] = v
	}
	out := make([]string, 0, len(env))
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	slices.Sort(out)
	return out
}
