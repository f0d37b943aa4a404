//go:build unix && !linux

package exec

import "syscall"

// setDeathSignal does nothing where the kernel has no parent-death signal:
// a step outlives an agent killed with SIGKILL until it ends by itself.
func setDeathSignal(*syscall.SysProcAttr) {}
