package mock

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/ciplat/ciplat/drivers"
)

// worker is one simulated worker. Guarded by Host.mu.
type worker struct {
	handle drivers.WorkerHandle
	cfg    drivers.WorkerConfig
	files  map[string]string         // the workspace: name → content
	steps  map[*runningStep]struct{} // steps in flight, for DestroyWorker
}

// runningStep is one RunStep in flight.
type runningStep struct {
	cancel context.CancelCauseFunc
	done   chan struct{} // closed when RunStep has returned
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
		steps: make(map[*runningStep]struct{}),
	}
	d.host.mu.Lock()
	defer d.host.mu.Unlock()
	if _, ok := d.host.workers[cfg.ID]; ok {
		return nil, fmt.Errorf("mock: worker %s already exists: use a new worker ID per job attempt", cfg.ID)
	}
	d.host.workers[cfg.ID] = w
	d.created.Add(1)
	return cloneHandle(&w.handle), nil
}

// DestroyWorker removes the worker from the Host, stops its running steps
// and waits for them to return (or for ctx to end). Destroying a worker that
// is gone returns nil. An interrupted step returns an error wrapping
// drivers.ErrWorkerNotFound.
func (d *Driver) DestroyWorker(ctx context.Context, h *drivers.WorkerHandle) error {
	if h == nil {
		return errors.New("mock: DestroyWorker: nil handle")
	}
	d.host.mu.Lock()
	w := d.host.workers[h.ID]
	var steps []*runningStep
	if w != nil {
		delete(d.host.workers, h.ID)
		for s := range w.steps {
			steps = append(steps, s)
		}
	}
	d.host.mu.Unlock()
	if w == nil {
		return nil
	}
	d.destroyed.Add(1)
	for _, s := range steps {
		s.cancel(errDestroyed)
	}
	for _, s := range steps {
		select {
		case <-s.done:
		case <-ctx.Done():
			return fmt.Errorf("mock: destroy worker %s: steps still stopping: %w", h.ID, ctx.Err())
		}
	}
	return nil
}

// RecoverWorker returns nil when the worker is on the Host and an error
// wrapping drivers.ErrWorkerNotFound when it is not.
func (d *Driver) RecoverWorker(ctx context.Context, h *drivers.WorkerHandle) error {
	if h == nil {
		return errors.New("mock: RecoverWorker: nil handle")
	}
	d.host.mu.Lock()
	_, ok := d.host.workers[h.ID]
	d.host.mu.Unlock()
	if !ok {
		return fmt.Errorf("mock: worker %s: %w", h.ID, drivers.ErrWorkerNotFound)
	}
	return nil
}

// ListWorkers returns the Host's workers created by a driver of this name,
// sorted by ID.
func (d *Driver) ListWorkers(ctx context.Context) ([]*drivers.WorkerHandle, error) {
	d.host.mu.Lock()
	defer d.host.mu.Unlock()
	out := make([]*drivers.WorkerHandle, 0, len(d.host.workers))
	for _, w := range d.host.workers {
		if w.handle.Driver == d.name {
			out = append(out, cloneHandle(&w.handle))
		}
	}
	slices.SortFunc(out, func(a, b *drivers.WorkerHandle) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// cloneHandle returns a deep copy of h.
func cloneHandle(h *drivers.WorkerHandle) *drivers.WorkerHandle {
	c := *h
	c.State = maps.Clone(h.State)
	return &c
}
