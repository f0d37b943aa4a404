package command

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/ciplat/ciplat/api"
)

// jobLogsCommand prints the output of a job's steps.
type jobLogsCommand struct{}

func (*jobLogsCommand) Synopsis() string { return "Print (and follow) the output of a job's steps" }

const jobLogsUsage = `Usage: ciplat job logs [flags] JOB_ID [STEP]

  Print the output lines of a job's steps, as the steps wrote them: stdout
  lines to stdout and stderr lines to stderr. When the job has several steps
  and no STEP is given, each line starts with "[step] ". JOB_ID may be a
  unique prefix of the job ID.

Flags:

  -f
    Follow: keep printing new lines until the job ends (Ctrl-C stops
    following, the job keeps running).

  -stderr
    Print only the stderr lines, to stdout (so they can be piped).
` + addressHelp + `
Example:

  $ ciplat job logs -f 1d2e3f4a test
  ok  	example.com/app	0.412s
`

// logRetries is how often a broken follow is resumed before giving up.
const logRetries = 3

func (c *jobLogsCommand) Run(ui *UI, args []string) int {
	m := newClientMeta(ui, "job logs", jobLogsUsage)
	follow := m.fs.Bool("f", false, "follow")
	stderrOnly := m.fs.Bool("stderr", false, "only stderr")
	pos, code, ok := m.parse(args, 1, 2)
	if !ok {
		return code
	}
	cl, code, ok := m.clientOrExit()
	if !ok {
		return code
	}
	j, _, err := cl.Job(context.Background(), pos[0], nil)
	if err != nil {
		return m.apiError(cl, fmt.Sprintf("read job %q", pos[0]), err)
	}
	steps := stepNames(j)
	step := ""
	if len(pos) == 2 {
		step = pos[1]
		if len(steps) > 0 && !slices.Contains(steps, step) {
			ui.errorf("job %s (%s) has no step %q; its steps are: %s", j.Name, shortID(j.ID), step, strings.Join(steps, ", "))
			return exitUsage
		}
	}
	prefix := step == "" && len(steps) != 1

	return printLogs(ui, m, cl, logPrint{what: "logs of job " + shortID(j.ID), follow: *follow, stderrOnly: *stderrOnly, prefix: prefix},
		func(ctx context.Context, after uint64, emit func(*api.LogEntry) error) error {
			return cl.JobLogs(ctx, j.ID, &api.LogOptions{Step: step, Follow: *follow, After: after}, emit)
		})
}

// logPrint says how printLogs prints a log stream.
type logPrint struct {
	what       string // for errors: "logs of job 1d2e3f4a"
	follow     bool   // keep printing until the stream ends; resume a broken one
	stderrOnly bool   // only stderr lines, to stdout
	prefix     bool   // start each line with "[step] "
}

// printLogs prints the entries fetch streams: stdout lines to stdout and
// stderr lines to stderr. While following, a broken stream is resumed
// after the last entry printed (logRetries times) and Ctrl-C ends it with
// success. It returns the exit code.
func printLogs(ui *UI, m *meta, cl *api.Client, p logPrint, fetch func(ctx context.Context, after uint64, emit func(*api.LogEntry) error) error) int {
	ctx := context.Background()
	if p.follow {
		var stop context.CancelFunc
		ctx, stop = ui.interrupt(ctx)
		defer stop()
	}
	var last uint64
	emit := func(e *api.LogEntry) error {
		if e.Seq > last {
			last = e.Seq
		}
		isErr := e.Stream == "stderr"
		if p.stderrOnly && !isErr {
			return nil
		}
		w := ui.Stdout
		if isErr && !p.stderrOnly {
			w = ui.Stderr
		}
		line := e.Line
		if p.prefix {
			line = "[" + e.Step + "] " + line
		}
		_, err := io.WriteString(w, line+"\n")
		return err
	}
	for try := 0; ; try++ {
		err := fetch(ctx, last, emit)
		if err == nil || (p.follow && ctx.Err() != nil) {
			return exitOK // done, or Ctrl-C while following
		}
		var ae *api.Error
		if !p.follow || try >= logRetries || errors.As(err, &ae) {
			return m.apiError(cl, p.what, err)
		}
		// The stream broke mid-way: resume after the last line we printed.
		select {
		case <-ctx.Done():
			return exitOK
		case <-time.After(time.Duration(try+1) * time.Second):
		}
	}
}

// stepNames lists a job's steps, from its status or else its spec.
func stepNames(j *api.Job) []string {
	var out []string
	for _, s := range j.Steps {
		out = append(out, s.Name)
	}
	if len(out) == 0 && j.Spec != nil {
		for _, s := range j.Spec.Steps {
			out = append(out, s.Name)
		}
	}
	return out
}
