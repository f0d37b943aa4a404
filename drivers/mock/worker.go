package mock

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"

	"github.com/ciplat/ciplat/drivers"
	"github.com/ciplat/ciplat/drivers/internal/workerset"
)

// worker is one simulated worker; the Host's workerset.Set holds it, with
// its steps in flight.
type worker struct {
	handle drivers.WorkerHandle // read-only
	cfg    drivers.WorkerConfig // read-only

	mu    sync.Mutex
	files map[string]string // the workspace: name → content; guarded by mu
}

// errDestroyed is the cancel cause a step sees when DestroyWorker stops it.
var errDestroyed = errors.New("worker destroyed")

// workspacePath is the (fictional) workspace path steps see.
func workspacePath(id string) string { return "/mock/workspaces/" + id }

// CreateWorker adds a worker with an empty workspace to the Host. It fails
// when the driver is unhealthy (see SetHealthy), when cfg.ID is empty, or
// when a worker with that ID exists.
func (d *Driver) CreateWorker(ctx context.Context, cfg drivers.WorkerConfig) (*drivers.WorkerHandle, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if healthy, reason := d.health(); !healthy {
		return nil, fmt.Errorf("mock: driver %s is unhealthy: %s", d.name, reason)
	}
	if cfg.ID == "" {
		return nil, errors.New("mock: WorkerConfig.ID is empty: give each job attempt an ID")
	}
	cfg.Env = maps.Clone(cfg.Env)
	cfg.Labels = maps.Clone(cfg.Labels)
	w := &worker{
		handle: drivers.WorkerHandle{
			ID:     cfg.ID,
			Driver: d.name,
			JobID:  cfg.JobID,
			State:  map[string]string{"workspace": workspacePath(cfg.ID)},
		},
		cfg:   cfg,
		files: make(map[string]string),
	}
	if !d.host.workers.Add(cfg.ID, w) {
		return nil, fmt.Errorf("mock: worker %s already exists: use a new worker ID per job attempt", cfg.ID)
	}
	d.created.Add(1)
	return workerset.CloneHandle(&w.handle), nil
}

// DestroyWorker removes the worker from the Host, stops its running steps
// and waits for them to return (or for ctx to end). Destroying a worker that
// is gone returns nil. An interrupted step returns an error wrapping
// drivers.ErrWorkerNotFound.
func (d *Driver) DestroyWorker(ctx context.Context, h *drivers.WorkerHandle) error {
	if h == nil {
		return errors.New("mock: DestroyWorker: nil handle")
	}
	// The worker is gone for every other call from here on: its tombstone
	// is forgotten at once, as a simulated worker leaves nothing behind.
	t := d.host.workers.Destroy(h.ID)
	t.Forget()
	if !t.WasLive() {
		return nil
	}
	d.destroyed.Add(1)
	if err := t.Wait(ctx); err != nil {
		return fmt.Errorf("mock: destroy worker %s: steps still stopping: %w", h.ID, err)
	}
	return nil
}

// RecoverWorker returns nil when the worker is on the Host and an error
// wrapping drivers.ErrWorkerNotFound when it is not.
func (d *Driver) RecoverWorker(ctx context.Context, h *drivers.WorkerHandle) error {
	if h == nil {
		return errors.New("mock: RecoverWorker: nil handle")
	}
	if _, ok := d.host.workers.Get(h.ID); !ok {
		return fmt.Errorf("mock: worker %s: %w", h.ID, drivers.ErrWorkerNotFound)
	}
	return nil
}

// ListWorkers returns the Host's workers created by a driver of this name,
// sorted by ID.
func (d *Driver) ListWorkers(ctx context.Context) ([]*drivers.WorkerHandle, error) {
	out := []*drivers.WorkerHandle{}
	for _, w := range d.host.workers.Live() {
		if w.handle.Driver == d.name {
			out = append(out, workerset.CloneHandle(&w.handle))
		}
	}
	workerset.SortHandles(out)
	return out, nil
}
