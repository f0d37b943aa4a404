//go:build unix

package drivertest

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// processAlive reports whether pid is a live process (a zombie is not), as
// far as this process can see.
func processAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return false
	}
	// Where nobody reaps orphans (PID 1 of some containers), a killed
	// process stays a zombie: Linux's /proc tells.
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return !errors.Is(err, os.ErrNotExist) || !procMounted()
	}
	if i := strings.LastIndexByte(string(stat), ')'); i >= 0 && i+2 < len(stat) {
		return stat[i+2] != 'Z' && stat[i+2] != 'X'
	}
	return true
}

// procMounted reports whether /proc describes processes.
func procMounted() bool {
	_, err := os.Stat("/proc/self/stat")
	return err == nil
}

// canSeeProcesses reports whether processAlive works here.
func canSeeProcesses() bool { return true }
