package command

import (
	"context"
	"fmt"
)

// nodeEligibilityCommand turns scheduling on a node on or off.
type nodeEligibilityCommand struct{}

func (*nodeEligibilityCommand) Synopsis() string { return "Allow or forbid new jobs on a node" }

const nodeEligibilityUsage = `Usage: ciplat node eligibility -enable|-disable ID

  Make a node eligible for new jobs, or not. Jobs it runs are not touched
  (to move them, drain the node). ID may be a unique prefix of the node ID.

Flags:

  -enable
    New jobs may be placed on the node.

  -disable
    No new job is placed on the node.
` + addressHelp + `
Example:

  $ ciplat node eligibility -disable 9a8b
  ==> Node 9a8b7c6d (build1) is ineligible: no new jobs are placed on it
`

func (c *nodeEligibilityCommand) Run(ui *UI, args []string) int {
	m := newClientMeta(ui, "node eligibility", nodeEligibilityUsage)
	enable := m.fs.Bool("enable", false, "allow new jobs")
	disable := m.fs.Bool("disable", false, "forbid new jobs")
	pos, code, ok := m.parse(args, 1, 1)
	if !ok {
		return code
	}
	if *enable == *disable {
		return m.usageError("give exactly one of -enable and -disable")
	}
	cl, code, ok := m.clientOrExit()
	if !ok {
		return code
	}
	n, err := cl.SetNodeEligibility(context.Background(), pos[0], *enable)
	if err != nil {
		return m.apiError(cl, fmt.Sprintf("set eligibility of node %q", pos[0]), err)
	}
	name := fmt.Sprintf("%s (%s)", shortID(n.ID), orDash(n.Name))
	if n.Eligible {
		fmt.Fprintf(ui.Stdout, "==> Node %s is eligible for new jobs\n", name)
	} else {
		fmt.Fprintf(ui.Stdout, "==> Node %s is ineligible: no new jobs are placed on it\n", name)
	}
	return exitOK
}
