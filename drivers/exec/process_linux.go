//go:build linux

package exec

import "syscall"

// setDeathSignal has the kernel SIGKILL the step's shell when the thread
// that started it (and so the agent) dies: an agent killed with SIGKILL
// leaves no shell to run the rest of a step after its job was moved to
// another node. The shell's own children stay in its process group; the
// next agent on this data dir destroys the worker's workspace.
func setDeathSignal(a *syscall.SysProcAttr) { a.Pdeathsig = syscall.SIGKILL }
