package agent

import (
	"flag"
	"log/slog"
	"os"
	"path/filepath"

	execdriver "github.com/ciplat/ciplat/drivers/exec"
)

// ExecConfig hardens the exec driver (drivers/exec.Config holds the
// details): which user steps run as and how jobs' resources limit them.
type ExecConfig struct {
	User         string
	Limits       string
	CgroupParent string
	PidsMax      int
	NoFile       uint64
	NProc        uint64
}

// execFileConfig is ExecConfig's part of a -config file.
type execFileConfig struct {
	ExecUser         *string `json:"exec_user"`
	ExecLimits       *string `json:"exec_limits"`
	ExecCgroupParent *string `json:"exec_cgroup_parent"`
	ExecPidsMax      *int    `json:"exec_pids_max"`
	ExecNoFile       *uint64 `json:"exec_nofile"`
	ExecNProc        *uint64 `json:"exec_nproc"`
}

// apply copies the fields the file sets into c.
func (fc *execFileConfig) apply(c *ExecConfig) {
	for _, s := range []struct {
		dst *string
		v   *string
	}{{&c.User, fc.ExecUser}, {&c.Limits, fc.ExecLimits}, {&c.CgroupParent, fc.ExecCgroupParent}} {
		if s.v != nil {
			*s.dst = *s.v
		}
	}
	if fc.ExecPidsMax != nil {
		c.PidsMax = *fc.ExecPidsMax
	}
	if fc.ExecNoFile != nil {
		c.NoFile = *fc.ExecNoFile
	}
	if fc.ExecNProc != nil {
		c.NProc = *fc.ExecNProc
	}
}

// registerExecFlags adds the exec driver's flags to fs.
func registerExecFlags(fs *flag.FlagSet, c *ExecConfig) {
	fs.StringVar(&c.User, "exec-user", c.User, "client: exec driver runs steps as this user (NAME, UID, NAME:GROUP or UID:GID; the agent must be root); workspaces are chowned to it")
	fs.StringVar(&c.Limits, "exec-limits", c.Limits, "client: how a job's resources limit exec steps: auto (a cgroup per step when the agent may create one, else none), cgroup (required), rlimit (RLIMIT_AS = memory), off")
	fs.StringVar(&c.CgroupParent, "exec-cgroup-parent", c.CgroupParent, "client: cgroup exec steps are made under (default ciplat.slice on cgroup v2, ciplat under the agent's own cgroup on v1)")
	fs.IntVar(&c.PidsMax, "exec-pids-max", c.PidsMax, "client: pids.max of each exec step's cgroup (default 0: 4096; -1: no limit)")
	fs.Uint64Var(&c.NoFile, "exec-nofile", c.NoFile, "client: RLIMIT_NOFILE of exec steps (0: the agent's)")
	fs.Uint64Var(&c.NProc, "exec-nproc", c.NProc, "client: RLIMIT_NPROC of exec steps, per user on the host (0: the agent's)")
}

// driverConfig is the exec driver's configuration (without Root and Logger).
func (c ExecConfig) driverConfig() execdriver.Config {
	return execdriver.Config{User: c.User, Limits: c.Limits, CgroupParent: c.CgroupParent, PidsMax: c.PidsMax, NoFile: c.NoFile, NProc: c.NProc}
}

// newDriver builds the exec driver over <clientDir>/workspaces. With -exec-user
// the client dir, the agent's own, is opened to search (0711: no listing)
// so the user can reach its workspace; the data dir above it is the
// operator's, and the driver's fingerprint names it if the user cannot pass.
func (c ExecConfig) newDriver(clientDir string, log *slog.Logger) *execdriver.Driver {
	ec := c.driverConfig()
	ec.Root, ec.Logger = filepath.Join(clientDir, "workspaces"), log
	if c.User != "" {
		err := os.MkdirAll(clientDir, 0o700)
		if err == nil {
			err = os.Chmod(clientDir, 0o711)
		}
		if err != nil {
			log.Warn("cannot open the client dir to the exec user", "dir", clientDir, "err", err)
		}
	}
	return execdriver.New(ec)
}
