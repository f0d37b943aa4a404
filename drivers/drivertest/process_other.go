//go:build !unix

package drivertest

// processAlive cannot tell here; canSeeProcesses says so.
func processAlive(pid int) bool { return false }

// canSeeProcesses reports whether processAlive works here.
func canSeeProcesses() bool { return false }
