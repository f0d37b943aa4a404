package drivertest

import (
	"fmt"
	"strings"
	"time"

	"github.com/ciplat/ciplat/drivers"
)

// Lang writes the suite's steps in the script language a driver runs. Each
// method returns one or more whole lines; the suite joins them with "\n"
// into StepConfig.Run. The texts, names and file names the suite passes are
// made of letters, digits, '-' and '_' only, so no method needs to quote
// anything harder than that.
//
// Every real driver runs POSIX sh and uses Sh, the default. A driver that
// does not run a shell (mock) gives its own Lang in Options; the subtests
// that need a shell then skip, saying so.
type Lang interface {
	// Name names the language in skip messages ("POSIX sh").
	Name() string
	// Echo writes text and a newline to stream.
	Echo(stream drivers.Stream, text string) string
	// Exit ends the step with code.
	Exit(code int) string
	// Sleep blocks for d (rounded up to what the language can say).
	Sleep(d time.Duration) string
	// PrintEnv writes one stdout line: "NAME=value" when the variable is
	// set (even to ""), "NAME unset" when not.
	PrintEnv(name string) string
	// WriteFile writes text to file name in the workspace.
	WriteFile(name, text string) string
	// ReadFile writes file name's content to stdout, and exits non-zero if
	// the file does not exist.
	ReadFile(name string) string
}

// Sh is POSIX sh, the language of StepConfig.Run. With Sh the suite also
// runs the subtests that need a real shell: `sh -e` semantics, the working
// directory, stdin, and background processes.
type Sh struct{}

var _ Lang = Sh{}

// Name returns "POSIX sh".
func (Sh) Name() string { return "POSIX sh" }

// Echo writes text with printf, to stderr when stream is drivers.Stderr.
func (Sh) Echo(stream drivers.Stream, text string) string {
	if stream == drivers.Stderr {
		return fmt.Sprintf("printf '%%s\\n' %s >&2", shQuote(text))
	}
	return fmt.Sprintf("printf '%%s\\n' %s", shQuote(text))
}

// Exit is `exit code`.
func (Sh) Exit(code int) string { return fmt.Sprintf("exit %d", code) }

// Sleep is `sleep N` with N whole seconds (POSIX sleep takes no fractions).
func (Sh) Sleep(d time.Duration) string {
	return fmt.Sprintf("sleep %d", int((d+time.Second-1)/time.Second))
}

// PrintEnv tests ${NAME+x} to tell unset from empty.
func (Sh) PrintEnv(name string) string {
	return fmt.Sprintf(`if [ -n "${%[1]s+x}" ]; then printf '%%s=%%s\n' %[1]s "$%[1]s"; else echo '%[1]s unset'; fi`, name)
}

// WriteFile redirects printf into the file.
func (Sh) WriteFile(name, text string) string {
	return fmt.Sprintf("printf '%%s\\n' %s > %s", shQuote(text), shQuote(name))
}

// ReadFile is cat.
func (Sh) ReadFile(name string) string { return "cat " + shQuote(name) }

// shQuote quotes s for sh with single quotes.
func shQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
