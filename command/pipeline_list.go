package command

import (
	"context"
	"fmt"

	"github.com/ciplat/ciplat/api"
)

// pipelineListCommand lists pipelines, newest first.
type pipelineListCommand struct{}

func (*pipelineListCommand) Synopsis() string { return "List pipelines, newest first" }

const pipelineListUsage = `Usage: ciplat pipeline list [flags]

  List the pipelines the cluster knows, newest first: a short ID, the name,
  the state, how many jobs succeeded and when each was submitted.

Flags:

  -json
    Print the list as JSON (the API's PipelineStub objects).
` + addressHelp + `
Example:

  $ ciplat pipeline list
  ID        NAME  STATE      JOBS           SUBMITTED
  3f2a9c1d  ci    SUCCEEDED  3/3 succeeded  2m ago
`

func (c *pipelineListCommand) Run(ui *UI, args []string) int {
	m := newClientMeta(ui, "pipeline list", pipelineListUsage)
	asJSON := m.fs.Bool("json", false, "print JSON")
	if _, code, ok := m.parse(args, 0, 0); !ok {
		return code
	}
	cl, code, ok := m.clientOrExit()
	if !ok {
		return code
	}
	list, _, err := cl.Pipelines(context.Background(), nil)
	if err != nil {
		return m.apiError(cl, "list pipelines", err)
	}
	if *asJSON {
		if list == nil {
			list = []*api.PipelineStub{}
		}
		return m.printJSON(list)
	}
	if len(list) == 0 {
		fmt.Fprintln(ui.Stdout, "No pipelines")
		return exitOK
	}
	now := ui.now()
	tw := newTable(ui.Stdout)
	fmt.Fprintln(tw, "ID\tNAME\tSTATE\tJOBS\tSUBMITTED")
	for _, p := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n",
			shortID(p.ID), orDash(p.Name), p.State, jobCounts(p.Jobs, p.JobStates), relTime(p.SubmittedAt, now))
	}
	tw.Flush()
	return exitOK
}
