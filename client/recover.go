package client

import (
	"context"
	"errors"
	"maps"
	"slices"

	"github.com/ciplat/ciplat/api"
	"github.com/ciplat/ciplat/drivers"
)

// recover cleans up after a previous run of this client, before any runner
// starts. The client does not re-attach to a job that ran across a restart:
// its step's output and exit code were lost with the process, so the attempt
// is reported lost (cause worker-lost) and the servers reschedule it per the
// job's reschedule policy, not its retries.
//
// For each persisted handle: RecoverWorker (to learn whether the worker is
// still there, for the log), then DestroyWorker. Then, by what the servers
// say about the allocation (allocs is the node's current list):
//
//   - still desired and running: report it FAILED with reason
//     "client restarted while the job ran";
//   - still desired and pending (the crash came before the first report): no
//     report — the watcher starts it afresh;
//   - stopped while running (cancelled during the restart): report it
//     complete, with no job state, as a runner does on a stop;
//   - ended or unknown: nothing to report.
//
// The handle file is removed once the worker is destroyed and any report has
// been delivered. Finally every driver's ListWorkers is compared with the
// handles: a worker no handle names is an orphan and is destroyed.
func (c *Client) recover(ctx context.Context, allocs []*api.Allocation) {
	byID := make(map[string]*api.Allocation, len(allocs))
	for _, a := range allocs {
		if a != nil {
			byID[a.ID] = a
		}
	}
	known := map[string]map[string]bool{} // driver → worker IDs with a handle
	var lost []*api.AllocUpdate
	var done []string // handles to remove once lost is reported
	for _, rec := range c.loadHandles() {
		log := c.log.With("alloc_id", rec.AllocID, "job_id", rec.JobID, "driver", rec.Driver, "worker", rec.Handle.ID)
		if known[rec.Driver] == nil {
			known[rec.Driver] = map[string]bool{}
		}
		known[rec.Driver][rec.Handle.ID] = true
		d := c.cfg.Drivers[rec.Driver]
		if d == nil {
			log.Error("a persisted worker's driver is not configured; cannot destroy it: enable the driver or remove the worker by hand")
			continue
		}
		err := d.RecoverWorker(ctx, rec.Handle)
		switch {
		case err == nil:
			log.Info("found a worker from before the restart; destroying it")
		case errors.Is(err, drivers.ErrWorkerNotFound):
			log.Info("a worker from before the restart is gone")
		default:
			log.Warn("cannot check a worker from before the restart; destroying it anyway", "err", err)
		}
		if !c.destroy(d, rec.Handle, log) {
			continue // keep the handle: the next start tries again
		}
		a := byID[rec.AllocID]
		switch {
		case a != nil && a.DesiredStatus == api.AllocDesiredRun && a.ClientStatus == api.AllocClientPending:
			c.removeHandle(rec.AllocID) // never reported running: the watcher starts it afresh
		case a != nil && a.ClientStatus == api.AllocClientRunning:
			u := &api.AllocUpdate{AllocID: rec.AllocID, ClientStatus: api.AllocClientComplete}
			if a.DesiredStatus == api.AllocDesiredRun {
				log.Warn("reporting the attempt lost by the restart")
				u = lostUpdate(rec.AllocID)
			}
			lost = append(lost, u)
			done = append(done, rec.AllocID)
			c.mu.Lock()
			c.finished[rec.AllocID] = struct{}{}
			c.mu.Unlock()
		default:
			c.removeHandle(rec.AllocID)
		}
	}
	if len(lost) > 0 {
		if err := c.sendUpdates(ctx, lost); err != nil {
			return // ctx ended; the handles stay for the next start
		}
	}
	for _, id := range done {
		c.removeHandle(id)
	}
	c.destroyOrphans(ctx, known)
}

// destroyOrphans destroys every worker a driver lists that no handle names:
// left by a crash between CreateWorker and the handle write, or by a
// DestroyWorker that failed after its handle was removed.
func (c *Client) destroyOrphans(ctx context.Context, known map[string]map[string]bool) {
	for _, name := range slices.Sorted(maps.Keys(c.cfg.Drivers)) {
		d := c.cfg.Drivers[name]
		hs, err := d.ListWorkers(ctx)
		if err != nil {
			c.log.Warn("cannot list workers to find orphans", "driver", name, "err", err)
			continue
		}
		for _, h := range hs {
			if h == nil || known[name][h.ID] {
				continue
			}
			log := c.log.With("driver", name, "worker", h.ID, "job_id", h.JobID)
			log.Warn("destroying an orphaned worker")
			c.destroy(d, h, log)
		}
	}
}
