package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ciplat/ciplat/drivers"
	"github.com/ciplat/ciplat/drivers/internal/workerset"
)

// CreateWorker creates the worker's Pod (see podSpec) and waits, on the
// informer, until its container runs. It fails, and deletes the Pod, when
// the Pod cannot start: the scheduler finds no node for longer than
// Config.UnschedulableGrace ("pod ... unschedulable: 0/3 nodes are
// available: ..."), the image cannot be pulled, the container cannot be
// created, the Pod fails or is deleted, or it is not running after
// Config.StartTimeout. cfg.CPU millicores and cfg.MemoryMB MiB become both
// requests and limits (zero: none). A live worker with the same ID must
// not exist.
func (d *Driver) CreateWorker(ctx context.Context, cfg drivers.WorkerConfig) (*drivers.WorkerHandle, error) {
	if err := validID(cfg.ID); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if cfg.CPU < 0 || cfg.MemoryMB < 0 {
		return nil, fmt.Errorf("kubernetes: worker %s: resources cpu=%d memory=%d: want non-negative millicores and MiB", cfg.ID, cfg.CPU, cfg.MemoryMB)
	}
	if cfg.Image == "" {
		return nil, fmt.Errorf("kubernetes: worker %s: no image: the kubernetes driver runs each job in a Pod of the job's image: set image: in the job", cfg.ID)
	}
	if err := checkEnv(cfg.Env, "worker env"); err != nil {
		return nil, err
	}
	live, err := d.listPods(ctx, cfg.ID)
	if err != nil {
		return nil, fmt.Errorf("kubernetes: worker %s: %w", cfg.ID, err)
	}
	if len(live) > 0 {
		return nil, fmt.Errorf("kubernetes: worker %s already exists (pod %s): use a new worker ID per job attempt", cfg.ID, live[0].Name)
	}
	if err := d.pods.synced(ctx, d.cfg.CallTimeout); err != nil {
		return nil, fmt.Errorf("kubernetes: worker %s: %w", cfg.ID, err)
	}

	spec := d.podSpec(cfg)
	var pod *corev1.Pod
	// Not retried: with generateName a retried create makes a second Pod.
	err = d.api.Call(ctx, "create pod", false, func(ctx context.Context) error {
		var err error
		pod, err = d.cs.CoreV1().Pods(d.cfg.Namespace).Create(ctx, spec, metav1.CreateOptions{})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("kubernetes: worker %s: %s", cfg.ID, createError(d.cfg.Namespace, err))
	}
	log := d.log.With("worker", cfg.ID, "pod", pod.Name)
	running, err := d.waitRunning(ctx, cfg.ID, pod.Name)
	if err != nil {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.cfg.CallTimeout)
		if derr := d.deletePod(dctx, pod.Name); derr != nil {
			log.Warn("deleting a pod that failed to start", "err", derr)
		}
		cancel()
		return nil, fmt.Errorf("kubernetes: worker %s: %w", cfg.ID, err)
	}
	log.Debug("worker created", "node", running.Spec.NodeName, "image", cfg.Image)
	return &drivers.WorkerHandle{
		ID:     cfg.ID,
		Driver: d.Name(),
		JobID:  cfg.JobID,
		State: map[string]string{
			statePod:       pod.Name,
			stateNamespace: d.cfg.Namespace,
			stateImage:     cfg.Image,
			stateNode:      running.Spec.NodeName,
		},
	}, nil
}

// createError says why the API server refused a Pod, and what to do.
func createError(ns string, err error) string {
	switch {
	case apierrors.IsNotFound(err):
		return fmt.Sprintf("create pod: namespace %q does not exist: create it or give -k8s-namespace (%v)", ns, apiMessage(err))
	case apierrors.IsForbidden(err):
		return fmt.Sprintf("create pod in namespace %q: forbidden: %v: apply deploy/kubernetes/rbac.yaml for the driver's user", ns, apiMessage(err))
	case apierrors.IsInvalid(err):
		return fmt.Sprintf("create pod: the API server rejects the pod: %v", apiMessage(err))
	default:
		return fmt.Sprintf("create pod in namespace %q: %v", ns, err)
	}
}

// waitRunning waits on the informer until Pod name of worker id runs, and
// returns it. It fails with the Pod's reason when the Pod cannot start,
// after UnschedulableGrace of being unschedulable, after StartTimeout, or
// when the informer has not seen the Pod within CallTimeout.
func (d *Driver) waitRunning(ctx context.Context, id, name string) (*corev1.Pod, error) {
	changes, unsubscribe := d.pods.subscribe(id)
	defer unsubscribe()
	start := time.NewTimer(d.cfg.StartTimeout)
	defer start.Stop()
	unseen := time.NewTimer(d.cfg.CallTimeout)
	defer unseen.Stop()
	var unschedulable *time.Timer
	defer func() {
		if unschedulable != nil {
			unschedulable.Stop()
		}
	}()
	seen := false
	last := fmt.Sprintf("pod %s not seen yet", name)
	for {
		var unschedulableC <-chan time.Time
		if p := d.pods.pod(name); p != nil {
			if !seen {
				seen = true
				unseen.Stop()
			}
			st := describe(p)
			last = st.reason
			switch {
			case st.state == podRunning:
				return p, nil
			case st.state == podGone:
				return nil, errors.New(st.reason)
			case !st.unschedulable.IsZero():
				if d.cfg.UnschedulableGrace == 0 {
					return nil, errors.New(st.reason)
				}
				if unschedulable == nil {
					unschedulable = time.NewTimer(d.cfg.UnschedulableGrace)
				}
				unschedulableC = unschedulable.C
			case unschedulable != nil: // scheduled after all
				unschedulable.Stop()
				unschedulable = nil
			}
		} else if seen {
			return nil, fmt.Errorf("pod %s was deleted while starting", name)
		}
		select {
		case <-changes:
		case <-unschedulableC:
			return nil, fmt.Errorf("%s (for %v, the unschedulable grace)", last, d.cfg.UnschedulableGrace)
		case <-unseen.C:
			if !seen {
				return nil, fmt.Errorf("pod %s was created but the pod watch (labels %s) did not see it within %v: is the API server overloaded?", name, d.pods.sel, d.cfg.CallTimeout)
			}
		case <-start.C:
			return nil, fmt.Errorf("pod %s not running after %v: %s", name, d.cfg.StartTimeout, last)
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for pod %s to run (%s): %w", name, last, ctx.Err())
		}
	}
}

// DestroyWorker stops the worker's step in flight (RunStep returns an
// error wrapping drivers.ErrWorkerNotFound; DestroyWorker waits for that),
// kills what still runs of it and removes its workspace directory (one exec,
// best effort: on a real cluster the Pod's deletion does both), and deletes
// its Pod with Config.DeleteGrace. Destroying a worker that is gone returns
// nil. If ctx ends first or the API server fails, it returns the error and
// the caller should call it again; ListWorkers still lists what is left.
func (d *Driver) DestroyWorker(ctx context.Context, h *drivers.WorkerHandle) error {
	if h == nil {
		return errors.New("kubernetes: DestroyWorker: nil handle")
	}
	if err := validID(h.ID); err != nil {
		return err
	}
	t := d.workers.Destroy(h.ID)
	pods, err := d.listPods(ctx, h.ID)
	if err != nil {
		return fmt.Errorf("kubernetes: destroy worker %s: %w", h.ID, err)
	}
	for _, p := range pods {
		if describe(p).state == podRunning {
			d.cleanup(ctx, p.Name, h.ID)
		}
		if err := d.deletePod(ctx, p.Name); err != nil {
			return fmt.Errorf("kubernetes: destroy worker %s: %w", h.ID, err)
		}
	}
	if err := t.Wait(ctx); err != nil {
		return fmt.Errorf("kubernetes: destroy worker %s: steps still stopping: %w", h.ID, err)
	}
	t.Forget()
	d.log.Debug("worker destroyed", "worker", h.ID, "pods", len(pods), "steps_interrupted", t.Steps())
	return nil
}

// deletePod deletes Pod name with the grace period; gone already is fine.
func (d *Driver) deletePod(ctx context.Context, name string) error {
	grace := int64(d.cfg.DeleteGrace.Seconds())
	err := d.api.Call(ctx, "delete pod", true, func(ctx context.Context) error {
		err := d.cs.CoreV1().Pods(d.cfg.Namespace).Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: &grace})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("delete pod %s: %w", name, err)
	}
	return nil
}

// listPods lists worker id's Pods from the API server (not the cache: a
// destroy must not miss a Pod the watch has not delivered yet), leaving
// out those being deleted.
func (d *Driver) listPods(ctx context.Context, id string) ([]*corev1.Pod, error) {
	var list *corev1.PodList
	err := d.api.Call(ctx, "list pods", true, func(ctx context.Context) error {
		var err error
		list, err = d.cs.CoreV1().Pods(d.cfg.Namespace).List(ctx, metav1.ListOptions{LabelSelector: allocSelector(id)})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list pods: %w", err)
	}
	var out []*corev1.Pod
	for i := range list.Items {
		if list.Items[i].DeletionTimestamp == nil {
			out = append(out, &list.Items[i])
		}
	}
	return out, nil
}

// RecoverWorker returns nil when the worker's Pod exists, is ciplat's and
// its container runs, and an error wrapping drivers.ErrWorkerNotFound when
// it is gone, being deleted, or not running (destroy it). Steps that were
// running when the old agent stopped are not re-attached.
func (d *Driver) RecoverWorker(ctx context.Context, h *drivers.WorkerHandle) error {
	if h == nil {
		return errors.New("kubernetes: RecoverWorker: nil handle")
	}
	if err := validID(h.ID); err != nil {
		return err
	}
	pods, err := d.listPods(ctx, h.ID)
	if err != nil {
		return fmt.Errorf("kubernetes: recover worker %s: %w", h.ID, err)
	}
	if len(pods) == 0 {
		return fmt.Errorf("kubernetes: worker %s: no pod labelled %s in namespace %q: %w", h.ID, allocSelector(h.ID), d.cfg.Namespace, drivers.ErrWorkerNotFound)
	}
	if st := describe(pods[0]); st.state != podRunning {
		return fmt.Errorf("kubernetes: worker %s: %s: destroy it: %w", h.ID, st.reason, drivers.ErrWorkerNotFound)
	}
	return nil
}

// ListWorkers returns a handle for every Pod labelled ciplat.io/managed=true
// (and ciplat.io/node-id=Config.NodeID when set) in the namespace, running
// or not, except those being deleted, sorted by ID, so every orphan can be
// destroyed.
func (d *Driver) ListWorkers(ctx context.Context) ([]*drivers.WorkerHandle, error) {
	var list *corev1.PodList
	err := d.api.Call(ctx, "list pods", true, func(ctx context.Context) error {
		var err error
		list, err = d.cs.CoreV1().Pods(d.cfg.Namespace).List(ctx, metav1.ListOptions{LabelSelector: managedSelector(d.cfg.NodeID).String()})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("kubernetes: list workers: %w", err)
	}
	byID := map[string]*drivers.WorkerHandle{}
	for i := range list.Items {
		p := &list.Items[i]
		id := p.Labels[labelAllocID]
		if p.DeletionTimestamp != nil || validID(id) != nil || byID[id] != nil {
			continue
		}
		byID[id] = &drivers.WorkerHandle{
			ID:     id,
			Driver: d.Name(),
			JobID:  p.Annotations[annoJobID],
			State: map[string]string{
				statePod:       p.Name,
				stateNamespace: p.Namespace,
				stateNode:      p.Spec.NodeName,
				"phase":        string(p.Status.Phase),
				"created":      p.CreationTimestamp.UTC().Format(time.RFC3339),
			},
		}
	}
	out := make([]*drivers.WorkerHandle, 0, len(byID))
	for _, h := range byID {
		out = append(out, h)
	}
	workerset.SortHandles(out)
	return out, nil
}

// startStep registers a step about to run in worker id (tracked while
// steps run in it), or fails with ErrWorkerNotFound when the worker is
// being destroyed. The caller must call the step's Finish when it has
// returned.
func (d *Driver) startStep(id string) (*workerset.Step, error) {
	s, ok := d.workers.StartTracked(id)
	if !ok {
		return nil, fmt.Errorf("kubernetes: worker %s: %w", id, drivers.ErrWorkerNotFound)
	}
	return s, nil
}
