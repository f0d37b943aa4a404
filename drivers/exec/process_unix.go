//go:build unix

package exec

import (
	"os"
	osexec "os/exec"
	"syscall"
)

// setProcessGroup makes cmd the leader of a new process group, so the step
// and everything it starts can be signalled together. Where the OS allows
// (Linux), the step's shell is also killed when the agent dies, so a
// SIGKILLed agent leaves no step running on while its job is rescheduled
// elsewhere (process_linux.go). With user set, the step runs as that user.
func setProcessGroup(cmd *osexec.Cmd, user *runAs) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if user != nil {
		cmd.SysProcAttr.Credential = user.credential()
	}
	setDeathSignal(cmd.SysProcAttr)
}

// terminateGroup asks p's process group to stop (SIGTERM).
func terminateGroup(p *os.Process) { _ = syscall.Kill(-p.Pid, syscall.SIGTERM) }

// killGroup kills p's process group (SIGKILL). A group that is already gone
// is not an error.
func killGroup(p *os.Process) { _ = syscall.Kill(-p.Pid, syscall.SIGKILL) }

// exitCode is the shell's exit status, or 128+n when signal n killed it, as
// a shell reports a child killed by a signal.
func exitCode(ps *os.ProcessState) int {
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ps.ExitCode()
}
