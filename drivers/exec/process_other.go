//go:build !unix

package exec

import (
	"os"
	osexec "os/exec"
)

// setProcessGroup does nothing where there are no process groups; only the
// shell itself is killed there.
func setProcessGroup(cmd *osexec.Cmd, user *runAs) {}

// terminateGroup kills the shell: there is no gentler signal here.
func terminateGroup(p *os.Process) { _ = p.Kill() }

// killGroup kills the shell.
func killGroup(p *os.Process) { _ = p.Kill() }

// exitCode is the shell's exit status.
func exitCode(ps *os.ProcessState) int { return ps.ExitCode() }
