package command

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/ciplat/ciplat/api"
)

// workerLogsCommand prints the output of the job attempt a worker ran.
type workerLogsCommand struct{}

func (*workerLogsCommand) Synopsis() string {
	return "Print (and follow) the output of the job attempt a worker ran"
}

const workerLogsUsage = `Usage: ciplat worker logs [flags] ID [STEP]

  Print the output lines of the job attempt that a worker ran (only that
  attempt, not the job's earlier or later ones): stdout lines to stdout and
  stderr lines to stderr. When the job has several steps and no STEP is
  given, each line starts with "[step] ". ID may be a unique prefix.

Flags:

  -f
    Follow: keep printing new lines until the worker's attempt ends
    (Ctrl-C stops following; the worker keeps running).

  -stderr
    Print only the stderr lines, to stdout (so they can be piped).
` + addressHelp + `
Example:

  $ ciplat worker logs -f 3f2a
  [build] go build ./...
  [test] ok  	example.com/app	0.412s
`

func (c *workerLogsCommand) Run(ui *UI, args []string) int {
	m := newClientMeta(ui, "worker logs", workerLogsUsage)
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
	w, err := cl.Worker(context.Background(), pos[0])
	if err != nil {
		return m.apiError(cl, fmt.Sprintf("read worker %q", pos[0]), err)
	}
	var steps []string
	if j, _, err := cl.Job(context.Background(), w.JobID, nil); err == nil {
		steps = stepNames(j)
	}
	step := ""
	if len(pos) == 2 {
		step = pos[1]
		if len(steps) > 0 && !slices.Contains(steps, step) {
			ui.errorf("the job of worker %s (%s) has no step %q; its steps are: %s", shortID(w.ID), workerJob(w), step, strings.Join(steps, ", "))
			return exitUsage
		}
	}
	p := logPrint{what: "logs of worker " + shortID(w.ID), follow: *follow, stderrOnly: *stderrOnly, prefix: step == "" && len(steps) != 1}
	return printLogs(ui, m, cl, p, func(ctx context.Context, after uint64, emit func(*api.LogEntry) error) error {
		return cl.WorkerLogs(ctx, w.ID, &api.LogOptions{Step: step, Follow: *follow, After: after}, emit)
	})
}
