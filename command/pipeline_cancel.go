package command

import (
	"context"
	"fmt"
)

// pipelineCancelCommand cancels every job of a pipeline that has not ended.
type pipelineCancelCommand struct{}

func (*pipelineCancelCommand) Synopsis() string { return "Cancel a running pipeline" }

const pipelineCancelUsage = `Usage: ciplat pipeline cancel [flags] ID

  Cancel a pipeline: jobs still pending are not run, running jobs have their
  workers terminated. ID may be a unique prefix of the pipeline ID.
  Cancelling a pipeline that already ended is an error (exit code 1).

Flags:
` + addressHelp + `
Example:

  $ ciplat pipeline cancel 3f2a9c1d
  ==> Pipeline 3f2a9c1d-5b7e-4a8e-9c0d-1e2f3a4b5c6d cancelled
`

func (c *pipelineCancelCommand) Run(ui *UI, args []string) int {
	m := newClientMeta(ui, "pipeline cancel", pipelineCancelUsage)
	pos, code, ok := m.parse(args, 1, 1)
	if !ok {
		return code
	}
	cl, code, ok := m.clientOrExit()
	if !ok {
		return code
	}
	p, err := cl.CancelPipeline(context.Background(), pos[0])
	if err != nil {
		return m.apiError(cl, fmt.Sprintf("cancel pipeline %q", pos[0]), err)
	}
	id := p.ID
	if id == "" {
		id = pos[0]
	}
	fmt.Fprintf(ui.Stdout, "==> Pipeline %s cancelled\n", id)
	return exitOK
}
