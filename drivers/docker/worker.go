package docker

import (
	"context"
	"errors"
	"fmt"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/volume"

	"github.com/ciplat/ciplat/drivers"
	"github.com/ciplat/ciplat/drivers/internal/workerset"
)

// The labels every container and volume of a worker carries.
const (
	labelManaged  = "ciplat.managed"  // "true": ciplat owns it
	labelAllocID  = "ciplat.alloc_id" // the worker ID (WorkerConfig.ID, the allocation)
	labelJobID    = "ciplat.job_id"
	labelNodeID   = "ciplat.node_id"
	labelPipeline = "ciplat.pipeline_id"
	labelJobName  = "ciplat.job_name"
)

// The WorkerHandle.State keys. They are informational: the driver always
// derives the names from the worker ID, so a tampered handle cannot point
// it at another container.
const (
	stateContainer = "container"
	stateVolume    = "volume"
	stateImage     = "image"
)

// keepAlive is the container's entrypoint: a shell that sleeps until the
// container is removed. It does nothing itself, so the container lives as
// long as the worker and every step is an exec beside it. It is PID 1: it
// reaps the orphans that killed steps leave, and exits at once on SIGTERM
// (`docker stop`), which a PID 1 without a trap would ignore. The `sleep &
// wait` form keeps the trap responsive and survives the step cleanup
// killing its sleep.
const keepAlive = `trap 'exit 0' TERM; while :; do sleep 3600 & wait; done`

// cpuPeriod is the CFS period (µs) of a worker's CPU limit: Docker's
// longest, one second. The quota per period is the job's share, so the
// average limit is what the job asked for, but a short burst (a step's
// exec setup, a quick command) runs at full speed instead of stalling for
// most of a 100ms period (NanoCPUs' period) once it used its 10ms: at
// 100 millicores that stall was 200ms of a one-step `true` job. A job
// that uses up its quota waits up to the rest of the second.
const cpuPeriod = 1_000_000

// containerName is the container of worker id.
func containerName(id string) string { return "ciplat-" + id }

// retiredName is worker id's container once DestroyWorker has begun to
// remove it in the background.
func retiredName(id string) string { return "ciplat-" + id + "-removing" }

// volumeName is the workspace volume of worker id.
func volumeName(id string) string { return "ciplat-" + id + "-ws" }

// validID checks that id can name a container and a volume: 1-128
// characters of [A-Za-z0-9_.-], starting with a letter or digit.
func validID(id string) error {
	ok := id != "" && len(id) <= 128 && isAlnum(id[0])
	for i := 0; ok && i < len(id); i++ {
		c := id[i]
		ok = isAlnum(c) || c == '_' || c == '.' || c == '-'
	}
	if !ok {
		return fmt.Errorf("docker: worker ID %q: want 1-128 characters of letters, digits, '_', '.' and '-', starting with a letter or digit", id)
	}
	return nil
}

func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

// labels returns the labels of cfg's container and volume: the caller's
// labels, then ciplat's, which cannot be overridden. The node label is
// Config.NodeID when set, the value ListWorkers filters on (the agent names
// its node there; WorkerConfig.NodeID is the client's node UUID), else
// WorkerConfig.NodeID.
func (d *Driver) labels(cfg drivers.WorkerConfig) map[string]string {
	l := make(map[string]string, len(cfg.Labels)+6)
	for k, v := range cfg.Labels {
		l[k] = v
	}
	l[labelManaged] = "true"
	l[labelAllocID] = cfg.ID
	l[labelJobID] = cfg.JobID
	l[labelNodeID] = cfg.NodeID
	if d.cfg.NodeID != "" {
		l[labelNodeID] = d.cfg.NodeID
	}
	l[labelPipeline] = cfg.PipelineID
	l[labelJobName] = cfg.JobName
	return l
}

// CreateWorker creates and starts the worker's container from cfg.Image
// (pulled first when it is not present, see ensureImage), with a named
// volume mounted at the workspace. Its environment is the image's, then
// CI=true, CIPLAT_JOB_ID, CIPLAT_JOB_NAME, CIPLAT_PIPELINE_ID and
// CIPLAT_WORKSPACE, then cfg.Env: it lives in the container, so a driver
// that recovers the worker after a restart runs steps with it. Limits:
// cfg.CPU millicores become a CFS quota per cpuPeriod (250 → 250ms of CPU
// per second, 0.25 CPU, as NanoCPUs would but without its 100ms period's
// stalls) and cfg.MemoryMB becomes Memory and MemorySwap (no swap beyond
// it); zero means unlimited.
// A worker with the same ID must not exist. If anything fails after the
// container was created, it is removed with its volume.
func (d *Driver) CreateWorker(ctx context.Context, cfg drivers.WorkerConfig) (*drivers.WorkerHandle, error) {
	if err := validID(cfg.ID); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if cfg.CPU < 0 || cfg.MemoryMB < 0 {
		return nil, fmt.Errorf("docker: worker %s: resources cpu=%d memory=%d: want non-negative millicores and MiB", cfg.ID, cfg.CPU, cfg.MemoryMB)
	}
	if cfg.MemoryMB > 0 && cfg.MemoryMB < 6 {
		return nil, fmt.Errorf("docker: worker %s: memory %d MiB: Docker needs at least 6 MiB", cfg.ID, cfg.MemoryMB)
	}
	env, err := containerEnv(d.cfg.Workspace, cfg)
	if err != nil {
		return nil, err
	}
	if err := d.ensureImage(ctx, cfg.Image); err != nil {
		return nil, err
	}

	name, vol, lbl := containerName(cfg.ID), volumeName(cfg.ID), d.labels(cfg)
	memory := int64(cfg.MemoryMB) << 20
	ccfg := &container.Config{
		Image:      cfg.Image,
		Entrypoint: []string{"sh", "-c", keepAlive},
		Cmd:        nil,
		Env:        env,
		WorkingDir: d.cfg.Workspace,
		Labels:     lbl,
		StopSignal: "SIGTERM",
	}
	hcfg := &container.HostConfig{
		Mounts: []mount.Mount{{
			Type:          mount.TypeVolume,
			Source:        vol,
			Target:        d.cfg.Workspace,
			VolumeOptions: &mount.VolumeOptions{Labels: lbl},
		}},
		Resources: container.Resources{
			CPUPeriod:  cpuPeriod,
			CPUQuota:   int64(cfg.CPU) * cpuPeriod / 1000,
			Memory:     memory,
			MemorySwap: memory,
		},
		RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyDisabled},
	}
	if d.cfg.Network != "" {
		hcfg.NetworkMode = container.NetworkMode(d.cfg.Network)
	}
	// Not retried: a create that reached the engine but lost its answer
	// would be retried into a conflict.
	err = d.eng.Call(ctx, "create container", false, func(ctx context.Context) error {
		_, err := d.eng.api.ContainerCreate(ctx, ccfg, hcfg, &network.NetworkingConfig{}, nil, name)
		return err
	})
	switch {
	case cerrdefs.IsConflict(err):
		return nil, fmt.Errorf("docker: worker %s already exists (container %s): use a new worker ID per job attempt: %w", cfg.ID, name, err)
	case err != nil:
		return nil, fmt.Errorf("docker: worker %s: create container %s from image %q: %w", cfg.ID, name, cfg.Image, err)
	}
	err = d.eng.Call(ctx, "start container", true, func(ctx context.Context) error {
		return d.eng.api.ContainerStart(ctx, name, container.StartOptions{})
	})
	if err != nil {
		if rerr := d.remove(context.WithoutCancel(ctx), cfg.ID); rerr != nil {
			d.log.Warn("removing a worker that failed to start", "worker", cfg.ID, "err", rerr)
		}
		return nil, fmt.Errorf("docker: worker %s: start container %s: %w", cfg.ID, name, err)
	}
	d.log.Debug("worker created", "worker", cfg.ID, "container", name, "image", cfg.Image)
	return &drivers.WorkerHandle{
		ID:     cfg.ID,
		Driver: d.Name(),
		JobID:  cfg.JobID,
		State:  map[string]string{stateContainer: name, stateVolume: vol, stateImage: cfg.Image},
	}, nil
}

// DestroyWorker removes the worker's container (force: its processes are
// killed) and its workspace volume. A step running in it returns promptly
// with an error wrapping drivers.ErrWorkerNotFound; DestroyWorker waits for
// that. Destroying a worker that is gone returns nil. If ctx ends first or
// the engine fails, it returns the error and the caller should call it
// again; ListWorkers still lists what is left.
//
// With no step in flight nothing runs in the container but its idle PID 1
// (every step's processes are killed when the step ends), so DestroyWorker
// only renames the container to <name>-removing, which makes it gone for
// RecoverWorker and RunStep, in this driver and in a restarted one, and
// removes container and volume in the background (Close waits for that).
// This keeps container removal, the slowest engine call of a short job,
// off the job's critical path. Should the agent die before the removal,
// the container still carries its labels: a restarted driver's
// ListWorkers lists it and DestroyWorker removes it under either name.
func (d *Driver) DestroyWorker(ctx context.Context, h *drivers.WorkerHandle) error {
	if h == nil {
		return errors.New("docker: DestroyWorker: nil handle")
	}
	if err := validID(h.ID); err != nil {
		return err
	}
	// Mark the worker destroyed (a tombstone if this Driver never saw it),
	// so no step can start while it goes away, and interrupt its steps.
	t := d.workers.Destroy(h.ID)
	d.mu.Lock()
	removing := d.removing[h.ID]
	d.mu.Unlock()
	if removing {
		return nil // a background removal is under way
	}

	if t.Steps() == 0 {
		renamed, err := d.retire(ctx, h.ID)
		if err != nil {
			return err
		}
		if renamed {
			d.removeInBackground(h.ID, t)
			return nil
		}
	}
	if err := d.remove(ctx, h.ID); err != nil {
		return err
	}
	if err := t.Wait(ctx); err != nil {
		return fmt.Errorf("docker: destroy worker %s: steps still stopping: %w", h.ID, err)
	}
	t.Forget()
	d.log.Debug("worker destroyed", "worker", h.ID, "steps_interrupted", t.Steps())
	return nil
}

// retire renames worker id's container to its -removing name; false when
// there is no container under the worker's name (gone, or retired by an
// earlier agent).
func (d *Driver) retire(ctx context.Context, id string) (bool, error) {
	err := d.eng.Call(ctx, "rename container", false, func(ctx context.Context) error {
		return d.eng.api.ContainerRename(ctx, containerName(id), retiredName(id))
	})
	switch {
	case err == nil:
		return true, nil
	case cerrdefs.IsNotFound(err), cerrdefs.IsConflict(err): // gone, or a -removing one already exists
		return false, nil
	default:
		return false, fmt.Errorf("docker: destroy worker %s: rename container %s: %w", id, containerName(id), err)
	}
}

// removeInBackground removes retired worker id's container and volume
// after DestroyWorker has returned. While it runs, ListWorkers leaves the
// worker out and another DestroyWorker returns nil; if it fails, the
// worker is listed again, for the orphan sweep.
func (d *Driver) removeInBackground(id string, t *workerset.Tombstone) {
	d.mu.Lock()
	d.removing[id] = true
	d.mu.Unlock()
	d.background.Go(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 4*d.cfg.CallTimeout)
		defer cancel()
		err := d.remove(ctx, id)
		d.mu.Lock()
		delete(d.removing, id)
		d.mu.Unlock()
		if err != nil {
			d.log.Warn("removing a destroyed worker failed; it stays listed for the orphan sweep", "worker", id, "err", err)
			return
		}
		t.Forget()
		d.log.Debug("worker destroyed", "worker", id, "background", true)
	})
}

// remove force-removes worker id's container (under its name and its
// -removing name) and then its volume; any of them being gone already is
// fine.
func (d *Driver) remove(ctx context.Context, id string) error {
	for _, name := range []string{containerName(id), retiredName(id)} {
		err := d.eng.Call(ctx, "remove container", true, func(ctx context.Context) error {
			err := d.eng.api.ContainerRemove(ctx, name, container.RemoveOptions{Force: true, RemoveVolumes: true})
			if cerrdefs.IsNotFound(err) {
				return nil
			}
			return err
		})
		if err != nil {
			return fmt.Errorf("docker: destroy worker %s: remove container %s: %w", id, name, err)
		}
	}
	vol := volumeName(id)
	err := d.eng.Call(ctx, "remove volume", true, func(ctx context.Context) error {
		err := d.eng.api.VolumeRemove(ctx, vol, true)
		if cerrdefs.IsNotFound(err) {
			return nil
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("docker: destroy worker %s: remove volume %s: %w", id, vol, err)
	}
	return nil
}

// RecoverWorker returns nil when the worker's container exists, is ciplat's
// and is running, and an error wrapping drivers.ErrWorkerNotFound when it
// is gone or stopped (an engine restart stops it: the steps' processes are
// lost, so the job attempt is, too; destroy the worker). Steps that were
// running when the old agent stopped are not re-attached.
func (d *Driver) RecoverWorker(ctx context.Context, h *drivers.WorkerHandle) error {
	if h == nil {
		return errors.New("docker: RecoverWorker: nil handle")
	}
	if err := validID(h.ID); err != nil {
		return err
	}
	name := containerName(h.ID)
	var info container.InspectResponse
	err := d.eng.Call(ctx, "inspect container", true, func(ctx context.Context) error {
		var err error
		info, err = d.eng.api.ContainerInspect(ctx, name)
		return err
	})
	switch {
	case cerrdefs.IsNotFound(err):
		return fmt.Errorf("docker: worker %s: no container %s: %w", h.ID, name, drivers.ErrWorkerNotFound)
	case err != nil:
		return fmt.Errorf("docker: recover worker %s: %w", h.ID, err)
	case info.Config == nil || info.Config.Labels[labelManaged] != "true" || info.Config.Labels[labelAllocID] != h.ID:
		return fmt.Errorf("docker: worker %s: container %s is not ciplat's (labels %s=true, %s=%s missing): %w", h.ID, name, labelManaged, labelAllocID, h.ID, drivers.ErrWorkerNotFound)
	case info.State == nil || !info.State.Running:
		status := "unknown"
		if info.State != nil {
			status = string(info.State.Status)
		}
		return fmt.Errorf("docker: worker %s: container %s is %s, not running: destroy it: %w", h.ID, name, status, drivers.ErrWorkerNotFound)
	}
	return nil
}

// ListWorkers returns a handle for every container labelled
// ciplat.managed=true (and ciplat.node_id=Config.NodeID when set), running
// or not, and for every such volume without its container (a create or
// destroy cut short), sorted by ID, so every orphan can be destroyed.
func (d *Driver) ListWorkers(ctx context.Context) ([]*drivers.WorkerHandle, error) {
	f := filters.NewArgs(filters.Arg("label", labelManaged+"=true"))
	if d.cfg.NodeID != "" {
		f.Add("label", labelNodeID+"="+d.cfg.NodeID)
	}
	var cs []container.Summary
	err := d.eng.Call(ctx, "list containers", true, func(ctx context.Context) error {
		var err error
		cs, err = d.eng.api.ContainerList(ctx, container.ListOptions{All: true, Filters: f})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("docker: list workers: %w", err)
	}
	var vs volume.ListResponse
	err = d.eng.Call(ctx, "list volumes", true, func(ctx context.Context) error {
		var err error
		vs, err = d.eng.api.VolumeList(ctx, volume.ListOptions{Filters: f})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("docker: list workers: %w", err)
	}

	byID := map[string]*drivers.WorkerHandle{}
	for _, c := range cs {
		id := c.Labels[labelAllocID]
		if validID(id) != nil {
			continue
		}
		byID[id] = &drivers.WorkerHandle{
			ID:     id,
			Driver: d.Name(),
			JobID:  c.Labels[labelJobID],
			State: map[string]string{
				stateContainer: containerName(id),
				stateVolume:    volumeName(id),
				stateImage:     c.Image,
				"status":       c.State,
				"created":      time.Unix(c.Created, 0).UTC().Format(time.RFC3339),
			},
		}
	}
	for _, v := range vs.Volumes {
		if v == nil {
			continue
		}
		id := v.Labels[labelAllocID]
		if validID(id) != nil || byID[id] != nil {
			continue
		}
		byID[id] = &drivers.WorkerHandle{
			ID:     id,
			Driver: d.Name(),
			JobID:  v.Labels[labelJobID],
			State:  map[string]string{stateVolume: volumeName(id), "status": "volume-only"},
		}
	}
	out := make([]*drivers.WorkerHandle, 0, len(byID))
	d.mu.Lock()
	for id, h := range byID {
		if !d.removing[id] { // being removed by this driver: not an orphan
			out = append(out, h)
		}
	}
	d.mu.Unlock()
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
		return nil, fmt.Errorf("docker: worker %s: %w", id, drivers.ErrWorkerNotFound)
	}
	return s, nil
}
