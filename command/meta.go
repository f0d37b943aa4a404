package command

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/ciplat/ciplat/api"
)

// meta is what commands share: their flag set and its parsing, and for the
// commands that talk to an agent the -address flag, the client and the
// reporting of API errors.
type meta struct {
	ui      *UI
	address string
	fs      *flag.FlagSet
	usage   string
}

// newMeta makes the flag set of a command. usage is the full help text
// printed by -h and after a usage error.
func newMeta(ui *UI, name, usage string) *meta {
	m := &meta{ui: ui, usage: usage}
	m.fs = flag.NewFlagSet(name, flag.ContinueOnError)
	m.fs.SetOutput(io.Discard) // parse prints our own messages
	return m
}

// newClientMeta is newMeta plus the -address flag of commands that talk to
// an agent.
func newClientMeta(ui *UI, name, usage string) *meta {
	m := newMeta(ui, name, usage)
	m.fs.StringVar(&m.address, "address", api.DefaultConfig().Address, "HTTP address of a ciplat agent")
	return m
}

// addressHelp is the -address paragraph every agent-facing usage text ends with.
const addressHelp = `
  -address=<addr>
    HTTP address of a ciplat agent. Default: $CIPLAT_ADDR, else
    http://127.0.0.1:4680.
`

// parse parses args, letting flags follow positional arguments as well as
// precede them ("run ci.yml -detach" works; "--" ends the flags). It checks
// the number of positional arguments is in [minArgs, maxArgs] (maxArgs < 0:
// no limit). ok is false when the command must return code: 0 after -h
// (usage printed to stdout), 2 after a usage error (printed to stderr).
func (m *meta) parse(args []string, minArgs, maxArgs int) (pos []string, code int, ok bool) {
	for {
		if err := m.fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fmt.Fprint(m.ui.Stdout, m.usage)
				return nil, exitOK, false
			}
			return nil, m.usageError("%v", err), false
		}
		rest := m.fs.Args()
		if len(rest) == 0 {
			break
		}
		consumed := len(args) - len(rest)
		if consumed > 0 && args[consumed-1] == "--" {
			pos = append(pos, rest...)
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
	switch {
	case len(pos) < minArgs:
		return nil, m.usageError("missing argument"), false
	case maxArgs >= 0 && len(pos) > maxArgs:
		return nil, m.usageError("unexpected argument %q", pos[maxArgs]), false
	}
	return pos, exitOK, true
}

// usageError prints the error with the command's usage line, as one line,
// to stderr and returns 2.
func (m *meta) usageError(format string, args ...any) int {
	synopsis, _, _ := strings.Cut(m.usage, "\n")
	synopsis = strings.TrimPrefix(synopsis, "Usage: ")
	m.ui.errorf("%s; usage: %s (-h for help)", fmt.Sprintf(format, args...), synopsis)
	return exitUsage
}

// client builds the api client for -address.
func (m *meta) client() (*api.Client, error) {
	cfg := api.DefaultConfig()
	cfg.Address = m.address
	return api.NewClient(cfg)
}

// clientOrExit is client for commands: on an invalid address it prints the
// error and returns ok false with code 2.
func (m *meta) clientOrExit() (c *api.Client, code int, ok bool) {
	c, err := m.client()
	if err != nil {
		m.ui.errorf("%v (flag -address or CIPLAT_ADDR)", err)
		return nil, exitUsage, false
	}
	return c, exitOK, true
}

// apiError prints err, a failed call made to do what, as one readable line
// and returns the exit code: 2 for bad input (HTTP 400, 413), 1 otherwise.
func (m *meta) apiError(c *api.Client, what string, err error) int {
	m.ui.errorf("%s", describeError(c, what, err))
	return exitCodeOf(err)
}

// exitCodeOf maps an error of an API call to an exit code.
func exitCodeOf(err error) int {
	if api.IsStatus(err, http.StatusBadRequest) || api.IsStatus(err, http.StatusRequestEntityTooLarge) {
		return exitUsage
	}
	return exitFailure
}

// describeError turns an API call's error into a message that says what to
// do: an unreachable agent names its address and how to start or point at
// one; an API error keeps the server's message.
func describeError(c *api.Client, what string, err error) string {
	var ae *api.Error
	switch {
	case isUnreachable(err):
		return unreachableMessage(c, err)
	case errors.Is(err, context.Canceled):
		return what + ": interrupted"
	case errors.As(err, &ae):
		return fmt.Sprintf("%s: %s", what, ae.Error())
	}
	return fmt.Sprintf("%s: %v", what, err)
}

// isUnreachable reports whether err means no agent answered at the address:
// the dial failed (refused, no such host, timeout).
func isUnreachable(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

func unreachableMessage(c *api.Client, err error) string {
	cause := err
	var ue *url.Error
	if errors.As(err, &ue) {
		cause = ue.Err
	}
	addr := api.DefaultAddress
	if c != nil {
		addr = c.Address()
	}
	return fmt.Sprintf("cannot reach the ciplat agent at %s (is 'ciplat agent -dev' running? set CIPLAT_ADDR): %v", addr, cause)
}

// printJSON writes v as indented JSON, for the -json flags.
func (m *meta) printJSON(v any) int {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		m.ui.errorf("encode JSON: %v", err)
		return exitFailure
	}
	fmt.Fprintf(m.ui.Stdout, "%s\n", b)
	return exitOK
}

// indentLines prefixes every line of s with prefix.
func indentLines(s, prefix string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = prefix + l
	}
	return strings.Join(lines, "\n")
}
