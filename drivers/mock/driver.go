// Package mock is an in-memory driver for tests and simulations. It runs no
// processes and no shell: it interprets each line of a step's Run with a tiny
// language (see RunStep), so a test can script output, exit codes, delays
// and flaky failures, and count the workers it created and destroyed.
//
// The workers live in a Host, the simulated machine. Drivers built over the
// same Host see the same workers, which is how a test simulates an agent
// restart: build a new Driver over the old one's Host.
package mock

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ciplat/ciplat/drivers"
	"github.com/ciplat/ciplat/drivers/internal/workerset"
)

// Config configures a mock Driver. The zero value is usable.
type Config struct {
	// Name is what Name returns; "mock" when empty. Give drivers on one
	// simulated node different names to simulate several drivers.
	Name string
	// Host is the simulated machine holding the workers; nil means a new,
	// private one. Share it between Driver values to simulate a restart.
	Host *Host
	// Sleep is how the `sleep` command waits: it must return nil after d, or
	// ctx's error as soon as ctx ends. Nil means a real timer; a simulation
	// can pass a scaled or virtual clock.
	Sleep func(ctx context.Context, d time.Duration) error
	// Now stamps log lines; nil means time.Now.
	Now func() time.Time
}

// Host is a simulated machine: the workers and their workspaces. It is safe
// for concurrent use by any number of Drivers.
type Host struct {
	workers workerset.Set[*worker] // by ID
}

// NewHost returns an empty simulated machine.
func NewHost() *Host { return &Host{} }

// Driver is the mock driver. Create it with New. It is safe for concurrent
// use, as drivers.Driver requires; SetHealthy and Stats may be called at any
// time from any goroutine.
type Driver struct {
	name  string
	host  *Host
	sleep func(context.Context, time.Duration) error
	now   func() time.Time

	healthMu sync.Mutex
	healthy  bool
	reason   string

	created, destroyed, steps, running atomic.Int64
}

var _ drivers.Driver = (*Driver)(nil)

// New returns a healthy mock driver.
func New(cfg Config) *Driver {
	d := &Driver{name: cfg.Name, host: cfg.Host, sleep: cfg.Sleep, now: cfg.Now, healthy: true}
	if d.name == "" {
		d.name = "mock"
	}
	if d.host == nil {
		d.host = NewHost()
	}
	if d.sleep == nil {
		d.sleep = sleep
	}
	if d.now == nil {
		d.now = time.Now
	}
	return d
}

// Name returns Config.Name, "mock" by default.
func (d *Driver) Name() string { return d.name }

// SetHealthy sets what Fingerprint reports from now on. While unhealthy,
// CreateWorker fails with reason; workers that exist keep working.
func (d *Driver) SetHealthy(healthy bool, reason string) {
	d.healthMu.Lock()
	d.healthy, d.reason = healthy, reason
	d.healthMu.Unlock()
}

// health returns what SetHealthy last set.
func (d *Driver) health() (bool, string) {
	d.healthMu.Lock()
	defer d.healthMu.Unlock()
	return d.healthy, d.reason
}

// Fingerprint reports the driver detected, and healthy unless SetHealthy
// said otherwise. Version is "mock".
func (d *Driver) Fingerprint(ctx context.Context) drivers.Fingerprint {
	healthy, reason := d.health()
	return drivers.Fingerprint{
		Detected:   true,
		Healthy:    healthy,
		Reason:     reason,
		Version:    "mock",
		Attributes: map[string]string{"driver." + d.name + ".simulated": "true"},
	}
}

// Stats counts what this Driver value did, for assertions.
type Stats struct {
	Created   int // workers CreateWorker made
	Destroyed int // workers DestroyWorker removed (not the idempotent no-ops)
	Steps     int // steps that returned, whatever their outcome
	Running   int // steps in flight now
}

// Stats returns this Driver value's counters; a Driver built over the same
// Host has its own.
func (d *Driver) Stats() Stats {
	return Stats{
		Created:   int(d.created.Load()),
		Destroyed: int(d.destroyed.Load()),
		Steps:     int(d.steps.Load()),
		Running:   int(d.running.Load()),
	}
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
