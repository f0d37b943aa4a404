package command

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/ciplat/ciplat/api"
)

// jobStatusCommand shows one job: its state, steps, attempts and, while it
// is pending, why the scheduler has not placed it.
type jobStatusCommand struct{}

func (*jobStatusCommand) Synopsis() string { return "Show a job: steps, attempts, placement" }

const jobStatusUsage = `Usage: ciplat job status [flags] ID

  Show a job of a pipeline: its state and the reason for it, the node and
  allocation of its current attempt, each step's state and exit code, the
  history of its attempts and, while it is pending, why no node was chosen.
  ID may be a unique prefix of the job ID.

Flags:

  -json
    Print the job as JSON.
` + addressHelp + `
Example:

  $ ciplat job status 1d2e3f4a
  ID       = 1d2e3f4a-...
  Pipeline = 3f2a9c1d-...
  Name     = test
  State    = FAILED
  ...
`

func (c *jobStatusCommand) Run(ui *UI, args []string) int {
	m := newClientMeta(ui, "job status", jobStatusUsage)
	asJSON := m.fs.Bool("json", false, "print JSON")
	pos, code, ok := m.parse(args, 1, 1)
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
	if *asJSON {
		return m.printJSON(j)
	}
	writeJobStatus(ui.Stdout, j, ui.now())
	return exitOK
}

func writeJobStatus(w io.Writer, j *api.Job, now time.Time) {
	attempt := strconv.Itoa(j.Attempt)
	if j.Spec != nil {
		attempt += fmt.Sprintf(" of at most %d", 1+j.Spec.Retry.Attempts)
	}
	kv := [][2]string{
		{"ID", j.ID},
		{"Pipeline", j.PipelineID},
		{"Name", j.Name},
		{"State", j.State},
		{"Attempt", attempt},
		{"Node", orDash(j.NodeID)},
		{"Alloc", orDash(j.AllocID)},
		{"Reason", orDash(firstLine(jobReason(j)))},
	}
	if !j.RetryAt.IsZero() && j.State == api.StatePending {
		kv = append(kv, [2]string{"Retry At", j.RetryAt.Local().Format(time.RFC3339)})
	}
	kv = append(kv,
		[2]string{"Created", fmtTime(j.CreatedAt, now)},
		[2]string{"Duration", spanDuration(j.StartedAt, j.FinishedAt, now)},
	)
	writeKV(w, kv)

	if j.State == api.StatePending && (j.Explain != "" || j.Placement != nil) {
		fmt.Fprintln(w, "\nPlacement (why this job is pending)")
		if j.Explain != "" {
			fmt.Fprintln(w, indentLines(j.Explain, "  "))
		}
		writePlacement(w, j.Placement)
	}

	fmt.Fprintln(w, "\nSteps")
	steps := j.Steps
	if len(steps) == 0 && j.Spec != nil {
		for _, s := range j.Spec.Steps {
			steps = append(steps, api.StepStatus{Name: s.Name, State: api.StepPending})
		}
	}
	if len(steps) == 0 {
		fmt.Fprintln(w, "  none reported yet")
	}
	tw := newTable(w)
	if len(steps) > 0 {
		fmt.Fprintln(tw, "STEP\tSTATE\tEXIT\tDURATION\tREASON")
	}
	for _, s := range steps {
		exit := "-"
		if s.ExitCode != nil {
			exit = strconv.Itoa(*s.ExitCode)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", s.Name, s.State, exit,
			spanDuration(s.StartedAt, s.FinishedAt, now), orDash(firstLine(s.Reason)))
	}
	tw.Flush()

	if len(j.History) > 0 {
		fmt.Fprintln(w, "\nAttempts")
		tw := newTable(w)
		fmt.Fprintln(tw, "ATTEMPT\tSTATE\tNODE\tALLOC\tDURATION\tREASON")
		for _, a := range j.History {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", a.Attempt, a.State, shortID(a.NodeID),
				shortID(a.AllocID), spanDuration(a.StartedAt, a.FinishedAt, now), orDash(firstLine(a.Reason))+attemptKind(a))
		}
		tw.Flush()
	}
}

// writePlacement prints the scheduler's counters of a placement attempt.
func writePlacement(w io.Writer, pm *api.PlacementMetrics) {
	if pm == nil {
		return
	}
	fmt.Fprintf(w, "  nodes evaluated: %d, filtered: %d%s, exhausted: %d%s\n",
		pm.NodesEvaluated, pm.NodesFiltered, countsByReason(pm.FilteredBy),
		pm.NodesExhausted, countsByReason(pm.ExhaustedBy))
}

// countsByReason renders " (driver: 2, os: 1)", reasons sorted; "" when empty.
func countsByReason(m map[string]int) string {
	if len(m) == 0 {
		return ""
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s: %d", k, m[k])
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

// attemptKind says what an ended attempt led to, after its reason:
// " · rescheduled (node-lost)" for an infrastructure fault, " · retried"
// for the job's own failure, nothing for the attempt the job ended with.
func attemptKind(a api.AttemptRecord) string {
	switch a.Kind {
	case "reschedule":
		if a.Cause != "" {
			return " · rescheduled (" + a.Cause + ")"
		}
		return " · rescheduled"
	case "retry":
		return " · retried"
	}
	return ""
}
