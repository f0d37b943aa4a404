package command

import (
	"context"
	"fmt"

	"github.com/ciplat/ciplat/api"
)

// pipelineStatusCommand shows one pipeline and its jobs.
type pipelineStatusCommand struct{}

func (*pipelineStatusCommand) Synopsis() string { return "Show a pipeline and its jobs" }

const pipelineStatusUsage = `Usage: ciplat pipeline status [flags] ID

  Show a pipeline: its state and duration, then one row per job with its
  state, attempt, node and the reason for its state. For a job still
  pending, the scheduler's explanation of why it has no node yet.
  ID may be a unique prefix of the pipeline ID.

Flags:

  -json
    Print the pipeline with its jobs as JSON.
` + addressHelp + `
Example:

  $ ciplat pipeline status 3f2a9c1d
  ID        = 3f2a9c1d-5b7e-4a8e-9c0d-1e2f3a4b5c6d
  Name      = ci
  State     = FAILED
  ...
  JOB ID    NAME   STATE      ATTEMPT  NODE      DURATION  REASON
  0c1d2e3f  build  SUCCEEDED  1        9a8b7c6d  4.2s      -
  1d2e3f4a  test   FAILED     2        9a8b7c6d  1.1s      step test exited 1
`

func (c *pipelineStatusCommand) Run(ui *UI, args []string) int {
	m := newClientMeta(ui, "pipeline status", pipelineStatusUsage)
	asJSON := m.fs.Bool("json", false, "print JSON")
	pos, code, ok := m.parse(args, 1, 1)
	if !ok {
		return code
	}
	cl, code, ok := m.clientOrExit()
	if !ok {
		return code
	}
	p, _, err := cl.Pipeline(context.Background(), pos[0], nil)
	if err != nil {
		return m.apiError(cl, fmt.Sprintf("read pipeline %q", pos[0]), err)
	}
	if *asJSON {
		return m.printJSON(p)
	}
	now := ui.now()
	state := p.State
	if p.CancelRequested && !api.TerminalState(p.State) {
		state += " (cancel requested)"
	}
	writeKV(ui.Stdout, [][2]string{
		{"ID", p.ID},
		{"Name", orDash(p.Name)},
		{"State", state},
		{"Submitted", fmtTime(p.SubmittedAt, now)},
		{"Duration", spanDuration(p.SubmittedAt, p.FinishedAt, now)},
	})
	fmt.Fprintln(ui.Stdout)
	jobs := orderedJobs(p)
	if len(jobs) == 0 {
		fmt.Fprintln(ui.Stdout, "No jobs")
		return exitOK
	}
	tw := newTable(ui.Stdout)
	fmt.Fprintln(tw, "JOB ID\tNAME\tSTATE\tATTEMPT\tNODE\tDURATION\tREASON")
	for _, j := range jobs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\n",
			shortID(j.ID), j.Name, j.State, j.Attempt, shortID(j.NodeID),
			spanDuration(j.StartedAt, j.FinishedAt, now), orDash(firstLine(jobReason(j))))
	}
	tw.Flush()
	for _, j := range jobs {
		if j.State == api.StatePending && j.Explain != "" {
			fmt.Fprintf(ui.Stdout, "\nJob %q (%s) is pending:\n%s\n", j.Name, shortID(j.ID), indentLines(j.Explain, "  "))
		}
	}
	return exitOK
}
