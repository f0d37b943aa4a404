package command

import (
	"context"
	"flag"
	"fmt"
	"net/http"

	"github.com/ciplat/ciplat/api"
)

// operatorSchedulerGetCommand prints the scheduler configuration in force.
type operatorSchedulerGetCommand struct{}

func (*operatorSchedulerGetCommand) Synopsis() string {
	return "Show the scheduler configuration: algorithm, preemption, workers"
}

const operatorSchedulerGetUsage = `Usage: ciplat operator scheduler get [flags]

  Show the scheduler configuration in force and where it comes from:
  "raft" once an operator stored one, else "agent" (the leader's flags).

Flags:

  -json
    Print the configuration as JSON.
` + addressHelp + `
Example:

  $ ciplat operator scheduler get
  Algorithm     binpack
  Preemption    false
  Workers       2
  Source        agent
  Modify Index  0
`

func (c *operatorSchedulerGetCommand) Run(ui *UI, args []string) int {
	m := newClientMeta(ui, "operator scheduler get", operatorSchedulerGetUsage)
	asJSON := m.fs.Bool("json", false, "print JSON")
	if _, code, ok := m.parse(args, 0, 0); !ok {
		return code
	}
	cl, code, ok := m.clientOrExit()
	if !ok {
		return code
	}
	sc, _, err := cl.SchedulerConfiguration(context.Background(), nil)
	if err != nil {
		return m.apiError(cl, "read the scheduler configuration", err)
	}
	if *asJSON {
		return m.printJSON(sc)
	}
	printSchedulerConfig(ui, sc)
	return exitOK
}

func printSchedulerConfig(ui *UI, sc *api.SchedulerConfiguration) {
	tw := newTable(ui.Stdout)
	fmt.Fprintf(tw, "Algorithm\t%s\n", sc.Algorithm)
	fmt.Fprintf(tw, "Preemption\t%t\n", sc.Preemption)
	fmt.Fprintf(tw, "Workers\t%d\n", sc.Workers)
	fmt.Fprintf(tw, "Source\t%s\n", sc.Source)
	fmt.Fprintf(tw, "Modify Index\t%d\n", sc.ModifyIndex)
	_ = tw.Flush()
}

// operatorSchedulerSetCommand changes the scheduler configuration.
type operatorSchedulerSetCommand struct{}

func (*operatorSchedulerSetCommand) Synopsis() string {
	return "Change the scheduler algorithm, preemption or workers"
}

const operatorSchedulerSetUsage = `Usage: ciplat operator scheduler set [-algorithm binpack|spread] [-preemption=true|false] [-workers N]

  Store a scheduler configuration through Raft. Fields whose flag is left
  out keep their current value. The write is check-and-set against the
  configuration read first, so two operators cannot silently overwrite each
  other (a conflict exits 1; run it again).

Flags:

  -algorithm=<binpack|spread>
    binpack fills the fullest node that fits (default); spread prefers the
    emptiest.

  -preemption=<true|false>
    Let a job that fits nowhere evict running jobs of lower priority.

  -workers=<N>
    How many scheduler goroutines the leader runs (1 or more).
` + addressHelp + `
Example:

  $ ciplat operator scheduler set -algorithm spread -preemption=true
  Algorithm     spread
  Preemption    true
  Workers       2
  Source        raft
  Modify Index  118
`

func (c *operatorSchedulerSetCommand) Run(ui *UI, args []string) int {
	m := newClientMeta(ui, "operator scheduler set", operatorSchedulerSetUsage)
	algorithm := m.fs.String("algorithm", "", "binpack or spread")
	preemption := m.fs.Bool("preemption", false, "allow preemption")
	workers := m.fs.Int("workers", 0, "scheduler workers")
	if _, code, ok := m.parse(args, 0, 0); !ok {
		return code
	}
	set := map[string]bool{}
	m.fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if !set["algorithm"] && !set["preemption"] && !set["workers"] {
		return m.usageError("nothing to set: give -algorithm, -preemption or -workers")
	}
	if set["algorithm"] && *algorithm != "binpack" && *algorithm != "spread" {
		return m.usageError("invalid -algorithm %q: want binpack or spread", *algorithm)
	}
	if set["workers"] && *workers < 1 {
		return m.usageError("invalid -workers %d: want 1 or more", *workers)
	}
	cl, code, ok := m.clientOrExit()
	if !ok {
		return code
	}
	ctx := context.Background()
	cur, _, err := cl.SchedulerConfiguration(ctx, nil)
	if err != nil {
		return m.apiError(cl, "read the scheduler configuration", err)
	}
	req := &api.SchedulerConfigurationRequest{Algorithm: cur.Algorithm, Preemption: cur.Preemption}
	if cur.Source == "raft" {
		w := cur.Workers
		req.Workers = &w // a stored value stays; the agent's flag stays the agent's
	}
	if set["algorithm"] {
		req.Algorithm = *algorithm
	}
	if set["preemption"] {
		req.Preemption = *preemption
	}
	if set["workers"] {
		req.Workers = workers
	}
	cas := cur.ModifyIndex
	out, err := cl.SetSchedulerConfiguration(ctx, req, &cas)
	if err != nil {
		if api.IsStatus(err, http.StatusConflict) {
			ui.errorf("the scheduler configuration changed while it was being set (modify index %d is stale); run the command again", cas)
			return exitFailure
		}
		return m.apiError(cl, "set the scheduler configuration", err)
	}
	printSchedulerConfig(ui, out)
	return exitOK
}
