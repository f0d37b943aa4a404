//go:build !linux

package exec

import "github.com/ciplat/ciplat/drivers"

// limiter is how this driver confines steps: nowhere but Linux at all.
type limiter struct {
	mode   string
	reason string
}

// newLimiter reports that nothing can be limited on this OS.
func newLimiter(mode, parent string) *limiter {
	if mode == LimitsOff {
		return &limiter{mode: "none"}
	}
	return &limiter{mode: "none", reason: "no cgroups or per-process rlimits on this OS"}
}

// hasCgroup is false: no cgroups here.
func (l *limiter) hasCgroup() bool { return false }

// confinement does nothing here.
type confinement struct{ memoryMB int }

func (d *Driver) confine(string, drivers.WorkerConfig) (*confinement, error) {
	return &confinement{}, nil
}
func (c *confinement) gated() bool         { return false }
func (c *confinement) apply(int) error     { return nil }
func (c *confinement) killAll()            {}
func (c *confinement) oomKilled() bool     { return false }
func (c *confinement) release() error      { return nil }
func (d *Driver) reapCgroups(string) error { return nil }
