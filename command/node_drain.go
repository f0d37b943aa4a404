package command

import (
	"context"
	"fmt"
	"time"

	"github.com/ciplat/ciplat/api"
)

// nodeDrainCommand starts or ends a node's drain.
type nodeDrainCommand struct{}

func (*nodeDrainCommand) Synopsis() string { return "Drain a node, or end its drain" }

const nodeDrainUsage = `Usage: ciplat node drain -enable [-deadline 10m] ID | -disable ID

  Drain a node: it gets no new placements and the jobs it runs may finish.
  With -deadline, whatever still runs when the deadline passes is stopped
  and rescheduled on other nodes; such a move does not use up the job's
  retries. When the node runs nothing any more the drain completes and the
  node stays ineligible: 'ciplat node eligibility -enable ID' puts it back
  to work. -disable ends a drain at once and makes the node eligible.
  ID may be a unique prefix of the node ID.

Flags:

  -enable
    Start the drain (or change its deadline).

  -disable
    End the drain; the node is eligible again.

  -deadline=<duration>
    With -enable: how long running jobs may take, such as 10m or 1h.
    Default: no deadline.
` + addressHelp + `
Example:

  $ ciplat node drain -enable -deadline 30m 9a8b
  ==> Node 9a8b7c6d (build1) draining; jobs still running at 14:05:00 are moved elsewhere
`

func (c *nodeDrainCommand) Run(ui *UI, args []string) int {
	m := newClientMeta(ui, "node drain", nodeDrainUsage)
	enable := m.fs.Bool("enable", false, "start the drain")
	disable := m.fs.Bool("disable", false, "end the drain")
	deadline := m.fs.Duration("deadline", 0, "how long running jobs may take")
	pos, code, ok := m.parse(args, 1, 1)
	if !ok {
		return code
	}
	switch {
	case *enable == *disable:
		return m.usageError("give exactly one of -enable and -disable")
	case *deadline < 0:
		return m.usageError("invalid -deadline %s: want a positive duration such as 10m", *deadline)
	case *disable && *deadline != 0:
		return m.usageError("-deadline goes with -enable")
	}
	cl, code, ok := m.clientOrExit()
	if !ok {
		return code
	}
	n, err := cl.DrainNode(context.Background(), pos[0], &api.DrainOptions{Enable: *enable, Deadline: *deadline})
	if err != nil {
		return m.apiError(cl, fmt.Sprintf("drain node %q", pos[0]), err)
	}
	name := fmt.Sprintf("%s (%s)", shortID(n.ID), orDash(n.Name))
	switch {
	case *disable:
		fmt.Fprintf(ui.Stdout, "==> Node %s no longer draining; eligible for new jobs\n", name)
	case n.DrainDeadline.IsZero():
		fmt.Fprintf(ui.Stdout, "==> Node %s draining; its running jobs may finish (no deadline)\n", name)
	default:
		fmt.Fprintf(ui.Stdout, "==> Node %s draining; jobs still running at %s are moved elsewhere\n",
			name, n.DrainDeadline.Local().Format(time.TimeOnly))
	}
	return exitOK
}
