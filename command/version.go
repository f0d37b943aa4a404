package command

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Version is the ciplat release; release builds set it with
// -ldflags "-X github.com/ciplat/ciplat/command.Version=1.2.3".
var Version = "0.1.0-dev"

// versionCommand prints the version of this binary.
type versionCommand struct{}

func (*versionCommand) Synopsis() string { return "Print the ciplat version" }

const versionUsage = `Usage: ciplat version

  Print the version of this ciplat binary, its VCS revision when it was
  built from a checkout, and the Go version it was built with.

Example:

  $ ciplat version
  ciplat v0.1.0-dev (3f2a9c1d, go1.26.8)
`

func (c *versionCommand) Run(ui *UI, args []string) int {
	m := newMeta(ui, "version", versionUsage)
	if _, code, ok := m.parse(args, 0, 0); !ok {
		return code
	}
	fmt.Fprintf(ui.Stdout, "ciplat v%s (%s)\n", Version, buildDetail())
	return exitOK
}

// buildDetail is the VCS revision (+dirty) and the Go version.
func buildDetail() string {
	detail := runtime.Version()
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return detail
	}
	var rev, dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = shortID(s.Value)
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "+dirty"
			}
		}
	}
	if rev != "" {
		detail = rev + dirty + ", " + detail
	}
	return detail
}
