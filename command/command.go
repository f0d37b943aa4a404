// Package command is the ciplat CLI: it finds the command named by the first
// words of the arguments in an explicit registry and runs it. Every command
// except agent talks to an agent only through package api.
package command

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"
)

// Exit codes shared by every command.
const (
	exitOK      = 0 // the command did what was asked (a followed pipeline SUCCEEDED)
	exitFailure = 1 // the work failed: pipeline FAILED/CANCELLED, API error, agent unreachable
	exitUsage   = 2 // bad input: flags, arguments, an unreadable file, an invalid spec
)

// Command is one CLI command. Run receives the words after the command's
// path (for "ciplat pipeline run -detach x.yml" that is "-detach x.yml"),
// writes only to the UI's streams and returns the exit code. A Command is
// built fresh for each run, so it may keep parsed flags in its fields.
type Command interface {
	// Synopsis is the one line 'ciplat -h' shows next to the command.
	Synopsis() string
	Run(ui *UI, args []string) int
}

// commands is the registry: command path → constructor. Paths of more than
// one word form groups ("pipeline", "job", "node") that 'ciplat <group> -h'
// lists.
var commands = map[string]func() Command{
	"agent":            func() Command { return agentCommand{} },
	"job logs":         func() Command { return &jobLogsCommand{} },
	"job plan":         func() Command { return &jobPlanCommand{} },
	"job port-forward": func() Command { return &jobPortForwardCommand{} },
	"job status":       func() Command { return &jobStatusCommand{} },
	"node status":      func() Command { return &nodeStatusCommand{} },
	"pipeline cancel":  func() Command { return &pipelineCancelCommand{} },
	"pipeline list":    func() Command { return &pipelineListCommand{} },
	"pipeline run":     func() Command { return &pipelineRunCommand{} },
	"pipeline status":  func() Command { return &pipelineStatusCommand{} },
	"server members":   func() Command { return &serverMembersCommand{} },
	"server leave":     func() Command { return &serverLeaveCommand{} },
	"version":          func() Command { return &versionCommand{} },

	"worker list":   func() Command { return &workerListCommand{} },
	"worker status": func() Command { return &workerStatusCommand{} },
	"worker stop":   func() Command { return &workerStopCommand{} },
	"worker logs":   func() Command { return &workerLogsCommand{} },

	"node drain":       func() Command { return &nodeDrainCommand{} },
	"node eligibility": func() Command { return &nodeEligibilityCommand{} },

	"operator raft list-peers":  func() Command { return &operatorRaftListPeersCommand{} },
	"operator raft remove-peer": func() Command { return &operatorRaftRemovePeerCommand{} },
	"operator snapshot save":    func() Command { return &operatorSnapshotSaveCommand{} },
	"operator snapshot restore": func() Command { return &operatorSnapshotRestoreCommand{} },
	"operator scheduler get":    func() Command { return &operatorSchedulerGetCommand{} },
	"operator scheduler set":    func() Command { return &operatorSchedulerSetCommand{} },
}

// UI is what a command may touch of the outside world. Main fills it from the
// process; tests fill it with buffers, a fixed clock and a cancellable
// interrupt.
type UI struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	// Color enables ANSI colours on Stdout (Main sets it when Stdout is a
	// terminal and NO_COLOR is unset).
	Color bool
	// Interrupt returns a context that ends on Ctrl-C. Commands that follow
	// (pipeline run, job logs -f) call it once they start following, so a
	// Ctrl-C before that still ends the process the usual way. Nil means
	// SIGINT and SIGTERM through os/signal.
	Interrupt func(context.Context) (context.Context, context.CancelFunc)
	// Now is the clock for relative times and running durations; nil means time.Now.
	Now func() time.Time
}

func (u *UI) now() time.Time {
	if u.Now != nil {
		return u.Now()
	}
	return time.Now()
}

func (u *UI) interrupt(ctx context.Context) (context.Context, context.CancelFunc) {
	if u.Interrupt != nil {
		return u.Interrupt(ctx)
	}
	return signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
}

// errorf prints one "Error: ..." line to Stderr.
func (u *UI) errorf(format string, args ...any) {
	fmt.Fprintf(u.Stderr, "Error: "+format+"\n", args...)
}

// Main runs the CLI with the words after the program name and returns the
// process exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	ui := &UI{
		Stdin:  os.Stdin,
		Stdout: stdout,
		Stderr: stderr,
		Color:  os.Getenv("NO_COLOR") == "" && isTerminal(stdout),
	}
	return run(ui, args)
}

// run dispatches args to the command whose path is the longest match of the
// leading words.
func run(ui *UI, args []string) int {
	if len(args) == 0 {
		printHelp(ui.Stderr, "")
		return exitUsage
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		if args[0] == "help" && len(args) > 1 {
			// "ciplat help pipeline run" is "ciplat pipeline run -h".
			return run(ui, append(append([]string(nil), args[1:]...), "-h"))
		}
		printHelp(ui.Stdout, "")
		return exitOK
	case "-v", "-version", "--version":
		return (&versionCommand{}).Run(ui, nil)
	}
	depth := 0
	for path := range commands {
		depth = max(depth, strings.Count(path, " ")+1)
	}
	for n := min(len(args), depth); n > 0; n-- {
		path := strings.Join(args[:n], " ")
		if mk, ok := commands[path]; ok {
			return mk().Run(ui, args[n:])
		}
	}
	// A group without (a known) subcommand: list what the group holds. The
	// longest group named by the leading words wins ("operator raft").
	n := 0
	for k := 1; k <= len(args) && k < depth; k++ {
		if len(subcommands(strings.Join(args[:k], " "))) > 0 {
			n = k
		}
	}
	if n > 0 {
		group := strings.Join(args[:n], " ")
		if len(args) > n && isHelpFlag(args[n]) {
			printHelp(ui.Stdout, group)
			return exitOK
		}
		if len(args) > n {
			ui.errorf("unknown command %q; 'ciplat %s -h' lists the %s commands", group+" "+args[n], group, group)
			return exitUsage
		}
		printHelp(ui.Stderr, group)
		return exitUsage
	}
	ui.errorf("unknown command %q; 'ciplat -h' lists the commands", args[0])
	return exitUsage
}

func isHelpFlag(s string) bool {
	return s == "-h" || s == "-help" || s == "--help"
}

// subcommands returns the sorted paths that start with group + " ".
func subcommands(group string) []string {
	var out []string
	for path := range commands {
		if strings.HasPrefix(path, group+" ") {
			out = append(out, path)
		}
	}
	sort.Strings(out)
	return out
}

// printHelp lists the commands (of one group when group is not empty).
func printHelp(w io.Writer, group string) {
	var paths []string
	if group == "" {
		fmt.Fprintln(w, "Usage: ciplat <command> [flags] [args]")
		fmt.Fprintln(w)
		fmt.Fprintln(w, "ciplat runs CI/CD pipelines on a cluster of agents.")
		for path := range commands {
			paths = append(paths, path)
		}
		sort.Strings(paths)
	} else {
		fmt.Fprintf(w, "Usage: ciplat %s <subcommand> [flags] [args]\n", group)
		paths = subcommands(group)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Commands:")
	width := 0
	for _, p := range paths {
		width = max(width, len(p))
	}
	for _, p := range paths {
		fmt.Fprintf(w, "    %-*s  %s\n", width, p, commands[p]().Synopsis())
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Run 'ciplat <command> -h' for a command's flags and an example.")
	fmt.Fprintln(w, "Commands that talk to an agent use -address, default $CIPLAT_ADDR or http://127.0.0.1:4680.")
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
