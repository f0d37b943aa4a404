package command

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/ciplat/ciplat/api"
)

// The worker commands: the Worker Manager API (GET/DELETE /v1/workers).

// workerAge is how long w has existed: until it ended, or until now.
func workerAge(w *api.Worker, now time.Time) string {
	if w.CreatedAt.IsZero() {
		return orDash(w.Age)
	}
	end := now
	if !w.Live && !w.EndedAt.IsZero() {
		end = w.EndedAt
	}
	d := end.Sub(w.CreatedAt)
	if d < 0 {
		d = 0
	}
	return d.Round(time.Second).String()
}

func workerJob(w *api.Worker) string {
	if w.JobName != "" {
		return w.JobName
	}
	return shortID(w.JobID)
}

func workerNode(w *api.Worker) string {
	if w.NodeName != "" {
		return w.NodeName
	}
	return shortID(w.NodeID)
}

// workerPageSize is how many workers `worker list` reads per request; it
// follows the pages to the end.
const workerPageSize = 200

// workerListCommand lists workers.
type workerListCommand struct{}

func (*workerListCommand) Synopsis() string { return "List the workers running jobs on every node" }

const workerListUsage = `Usage: ciplat worker list [flags]

  List the live workers of every node, newest first: one per job attempt,
  with the driver that runs it, its node, job, image, age and state
  (creating, running, terminated, failed).

Flags:

  -all
    Also list workers that ended.

  -json
    Print the list as JSON.
` + addressHelp + `
Example:

  $ ciplat worker list
  ID        DRIVER  NODE    JOB    IMAGE               AGE  STATE
  3f2a9c1e  docker  build1  test   ciplat/busybox:test 42s  running
`

func (c *workerListCommand) Run(ui *UI, args []string) int {
	m := newClientMeta(ui, "worker list", workerListUsage)
	all := m.fs.Bool("all", false, "include ended workers")
	asJSON := m.fs.Bool("json", false, "print JSON")
	if _, code, ok := m.parse(args, 0, 0); !ok {
		return code
	}
	cl, code, ok := m.clientOrExit()
	if !ok {
		return code
	}
	ws, err := cl.Workers(context.Background(), &api.WorkerListOptions{All: *all, PerPage: workerPageSize})
	if err != nil {
		return m.apiError(cl, "list workers", err)
	}
	if *asJSON {
		if ws == nil {
			ws = []*api.Worker{}
		}
		return m.printJSON(ws)
	}
	if len(ws) == 0 {
		fmt.Fprintln(ui.Stdout, "No workers")
		return exitOK
	}
	tw := newTable(ui.Stdout)
	fmt.Fprintln(tw, "ID\tDRIVER\tNODE\tJOB\tATTEMPT\tIMAGE\tAGE\tSTATE")
	for _, w := range ws {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", shortID(w.ID), orDash(w.Driver), workerNode(w),
			workerJob(w), w.Attempt, orDash(w.Image), workerAge(w, ui.now()), workerStateText(w))
	}
	tw.Flush()
	return exitOK
}

// workerStateText is the state, with "(stopping)" while an operator's stop
// is under way.
func workerStateText(w *api.Worker) string {
	if w.StopRequested && w.Live {
		return w.State + " (stopping)"
	}
	return w.State
}

// workerStatusCommand shows one worker.
type workerStatusCommand struct{}

func (*workerStatusCommand) Synopsis() string { return "Show one worker" }

const workerStatusUsage = `Usage: ciplat worker status [flags] ID

  Show one worker: its driver and the driver's ID for it, node, job and
  attempt, image, state and why it ended. ID may be a unique prefix.

Flags:

  -json
    Print the worker as JSON.
` + addressHelp + `
Example:

  $ ciplat worker status 3f2a
  ID        = 3f2a9c1e-...
  Driver    = docker
  State     = running
`

func (c *workerStatusCommand) Run(ui *UI, args []string) int {
	m := newClientMeta(ui, "worker status", workerStatusUsage)
	asJSON := m.fs.Bool("json", false, "print JSON")
	pos, code, ok := m.parse(args, 1, 1)
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
	if *asJSON {
		return m.printJSON(w)
	}
	writeWorker(ui.Stdout, w, ui.now())
	return exitOK
}

func writeWorker(out io.Writer, w *api.Worker, now time.Time) {
	writeKV(out, [][2]string{
		{"ID", w.ID},
		{"Driver", orDash(w.Driver)},
		{"Worker ID", orDash(w.HandleID)},
		{"Node", fmt.Sprintf("%s (%s)", shortID(w.NodeID), orDash(w.NodeName))},
		{"Job", fmt.Sprintf("%s (%s)", orDash(w.JobName), shortID(w.JobID))},
		{"Pipeline", shortID(w.PipelineID)},
		{"Attempt", strconv.Itoa(w.Attempt)},
		{"Image", orDash(w.Image)},
		{"State", workerStateText(w)},
		{"Reason", orDash(w.Reason)},
		{"Created", fmtTime(w.CreatedAt, now)},
		{"Age", workerAge(w, now)},
	})
}

// workerStopCommand terminates a worker.
type workerStopCommand struct{}

func (*workerStopCommand) Synopsis() string {
	return "Terminate a worker; its job is retried or fails per its policy"
}

const workerStopUsage = `Usage: ciplat worker stop ID

  Terminate a worker: its client destroys it, and the job attempt it ran
  ends with the reason "worker terminated by operator"; the job is retried
  if its retry policy allows, else it fails. Stopping a worker that already
  ended does nothing. ID may be a unique prefix.
` + addressHelp + `
Example:

  $ ciplat worker stop 3f2a
  ==> Worker 3f2a9c1e (job test on build1) is being terminated
`

func (c *workerStopCommand) Run(ui *UI, args []string) int {
	m := newClientMeta(ui, "worker stop", workerStopUsage)
	pos, code, ok := m.parse(args, 1, 1)
	if !ok {
		return code
	}
	cl, code, ok := m.clientOrExit()
	if !ok {
		return code
	}
	w, err := cl.StopWorker(context.Background(), pos[0])
	if err != nil {
		return m.apiError(cl, fmt.Sprintf("stop worker %q", pos[0]), err)
	}
	what := fmt.Sprintf("%s (job %s on %s)", shortID(w.ID), workerJob(w), workerNode(w))
	if w.Live {
		fmt.Fprintf(ui.Stdout, "==> Worker %s is being terminated\n", what)
	} else {
		fmt.Fprintf(ui.Stdout, "==> Worker %s has already ended (%s)\n", what, w.State)
	}
	return exitOK
}
