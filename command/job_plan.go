package command

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/ciplat/ciplat/api"
)

// jobPlanCommand is a dry run of the scheduler for one job spec.
type jobPlanCommand struct{}

func (*jobPlanCommand) Synopsis() string {
	return "Dry run: show where a job spec would be placed now, and why"
}

const jobPlanUsage = `Usage: ciplat job plan [flags] FILE

  Ask the scheduler where the job in FILE (a single job spec, YAML or JSON;
  "-" reads standard input) would be placed now, without submitting it or
  changing anything. Prints the chosen node and its score, the best offers
  with each scorer's part, and the explanation.

  Exit codes: 0 the job is placeable now, 1 it is not (or the agent failed),
  2 bad input (unreadable file, invalid spec, bad flags).

Flags:

  -json
    Print the dry run as JSON.
` + addressHelp + `
Example:

  $ ciplat job plan build.yml
  Placeable   yes
  Node        node-2 (4f1c2d3e)
  Score       0.8123
  Algorithm   binpack

  Top offers:
  NODE    SCORE   SCORES
  node-2  0.8123  affinity=1 binpack=0.6246
  node-1  0.4551  affinity=0 binpack=0.9101

  Explain: 2 nodes evaluated, none rejected
`

func (c *jobPlanCommand) Run(ui *UI, args []string) int {
	m := newClientMeta(ui, "job plan", jobPlanUsage)
	asJSON := m.fs.Bool("json", false, "print JSON")
	pos, code, ok := m.parse(args, 1, 1)
	if !ok {
		return code
	}
	spec, err := readSpec(ui, pos[0])
	if err != nil {
		ui.errorf("%v", err)
		return exitUsage
	}
	cl, code, ok := m.clientOrExit()
	if !ok {
		return code
	}
	plan, err := cl.Schedule(context.Background(), spec)
	if err != nil {
		return m.apiError(cl, "plan the job", err)
	}
	if *asJSON {
		if code := m.printJSON(plan); code != exitOK {
			return code
		}
	} else {
		printPlan(ui, plan)
	}
	if !plan.Placed {
		return exitFailure
	}
	return exitOK
}

func printPlan(ui *UI, p *api.ScheduleDryRun) {
	tw := newTable(ui.Stdout)
	if p.Placed {
		fmt.Fprintf(tw, "Placeable\tyes\n")
		node := p.NodeName
		if node == "" {
			node = p.NodeID
		} else if p.NodeID != "" {
			node = fmt.Sprintf("%s (%s)", p.NodeName, shortID(p.NodeID))
		}
		fmt.Fprintf(tw, "Node\t%s\n", node)
		fmt.Fprintf(tw, "Score\t%.4f\n", p.Score)
	} else {
		fmt.Fprintf(tw, "Placeable\tno\n")
	}
	if p.Algorithm != "" {
		fmt.Fprintf(tw, "Algorithm\t%s\n", p.Algorithm)
	}
	_ = tw.Flush()
	if len(p.Preemptions) > 0 {
		fmt.Fprintln(ui.Stdout)
		fmt.Fprintln(ui.Stdout, "Would preempt:")
		tw = newTable(ui.Stdout)
		fmt.Fprintln(tw, "ALLOC\tJOB\tPRIORITY")
		for _, v := range p.Preemptions {
			fmt.Fprintf(tw, "%s\t%s\t%d\n", shortID(v.AllocID), v.JobName, v.Priority)
		}
		_ = tw.Flush()
	}
	if len(p.Offers) > 0 {
		fmt.Fprintln(ui.Stdout)
		fmt.Fprintln(ui.Stdout, "Top offers:")
		tw = newTable(ui.Stdout)
		fmt.Fprintln(tw, "NODE\tSCORE\tSCORES")
		for _, o := range p.Offers {
			name := o.NodeName
			if name == "" {
				name = o.NodeID
			}
			fmt.Fprintf(tw, "%s\t%.4f\t%s\n", name, o.Score, formatScores(o.Scores))
		}
		_ = tw.Flush()
	}
	fmt.Fprintln(ui.Stdout)
	explain := p.Explain
	if explain == "" {
		explain = "no explanation"
	}
	fmt.Fprintf(ui.Stdout, "Explain: %s\n", explain)
}

// formatScores prints each scorer's part, sorted by name: "affinity=1 binpack=0.62".
func formatScores(s map[string]float64) string {
	names := make([]string, 0, len(s))
	for k := range s {
		names = append(names, k)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, k := range names {
		parts[i] = fmt.Sprintf("%s=%.4g", k, s[k])
	}
	return strings.Join(parts, " ")
}
