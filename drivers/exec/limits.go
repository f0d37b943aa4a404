package exec

import "fmt"

// The values of Config.Limits: how a job's resources (WorkerConfig.CPU in
// millicores, MemoryMB) and Config.PidsMax become limits on each step.
const (
	// LimitsAuto (the default, also "") uses a cgroup per step when the
	// agent can create one (Linux, root or a delegated hierarchy) and sets
	// only Config.NoFile and Config.NProc otherwise, logging why: memory and
	// CPU are then not limited, because RLIMIT_AS would break programs that
	// reserve address space they never use (the Go toolchain, JVMs).
	LimitsAuto = "auto"
	// LimitsCgroup requires a cgroup per step: without one Fingerprint
	// reports the driver unhealthy, with the reason.
	LimitsCgroup = "cgroup"
	// LimitsRlimit sets RLIMIT_AS to the job's memory on each process of the
	// step (per process, of virtual memory: an allocation past it fails
	// with ENOMEM rather than the step being killed). CPU is not limited.
	LimitsRlimit = "rlimit"
	// LimitsOff limits nothing but Config.NoFile and Config.NProc.
	LimitsOff = "off"
)

// defaultPidsMax is a step's pids.max when Config.PidsMax is 0: room for a
// parallel build's threads, not for a fork bomb.
const defaultPidsMax = 4096

// checkLimitsMode validates Config.Limits.
func checkLimitsMode(mode string) error {
	switch mode {
	case "", LimitsAuto, LimitsCgroup, LimitsRlimit, LimitsOff:
		return nil
	}
	return fmt.Errorf("exec: limits %q: want %s, %s, %s or %s", mode, LimitsAuto, LimitsCgroup, LimitsRlimit, LimitsOff)
}
