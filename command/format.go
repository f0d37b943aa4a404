package command

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ciplat/ciplat/api"
)

// shortID is the first 8 characters of an ID, as tables show it; "-" for none.
func shortID(id string) string {
	if id == "" {
		return "-"
	}
	if len(id) > 8 {
		return id[:8]
	}
	return id
}

// orDash returns s, or "-" when s is empty.
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// fmtDuration rounds d to milliseconds.
func fmtDuration(d time.Duration) string {
	return d.Round(time.Millisecond).String()
}

// spanDuration is finished − started rounded to ms; while running it counts
// to now; "-" when it has not started.
func spanDuration(started, finished, now time.Time) string {
	switch {
	case started.IsZero():
		return "-"
	case finished.IsZero():
		return fmtDuration(now.Sub(started))
	}
	return fmtDuration(finished.Sub(started))
}

// relTime says how long ago t was ("2m ago"); "-" for the zero time.
func relTime(t, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := now.Sub(t)
	switch {
	case d < time.Second:
		return "just now"
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d/time.Second))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d/time.Minute))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d/time.Hour))
	}
	return fmt.Sprintf("%dd ago", int(d/(24*time.Hour)))
}

// fmtTime is an absolute local time with its relative age.
func fmtTime(t, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return fmt.Sprintf("%s (%s)", t.Local().Format(time.RFC3339), relTime(t, now))
}

// newTable returns a tabwriter for aligned columns; rows are tab-separated.
func newTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
}

// writeKV prints "Key = value" lines with the '=' aligned, as Nomad does.
func writeKV(w io.Writer, kv [][2]string) {
	tw := tabwriter.NewWriter(w, 0, 4, 1, ' ', 0)
	for _, p := range kv {
		fmt.Fprintf(tw, "%s\t= %s\n", p[0], p[1])
	}
	tw.Flush()
}

// stateOrder is the order job-state counts are listed in.
var stateOrder = []string{
	api.StateSucceeded, api.StateFailed, api.StateCancelled, api.StateTerminated,
	api.StateRunning, api.StateScheduled, api.StatePending,
}

// jobCounts summarises a pipeline's jobs: "3/3 succeeded", "1/3 succeeded,
// 1 failed, 1 cancelled"; "3 jobs" when the states are unknown.
func jobCounts(total int, states map[string]int) string {
	if len(states) == 0 {
		if total == 1 {
			return "1 job"
		}
		return fmt.Sprintf("%d jobs", total)
	}
	parts := []string{fmt.Sprintf("%d/%d succeeded", states[api.StateSucceeded], total)}
	seen := map[string]bool{api.StateSucceeded: true}
	for _, s := range stateOrder {
		if !seen[s] && states[s] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", states[s], strings.ToLower(s)))
		}
		seen[s] = true
	}
	var other []string
	for s, n := range states {
		if !seen[s] && n > 0 {
			other = append(other, fmt.Sprintf("%d %s", n, strings.ToLower(s)))
		}
	}
	sort.Strings(other)
	return strings.Join(append(parts, other...), ", ")
}

// orderedJobs returns p's jobs in spec order (JobIDs), jobs not listed there last.
func orderedJobs(p *api.Pipeline) []*api.Job {
	pos := make(map[string]int, len(p.JobIDs))
	for i, id := range p.JobIDs {
		pos[id] = i
	}
	jobs := append([]*api.Job(nil), p.Jobs...)
	sort.SliceStable(jobs, func(a, b int) bool {
		pa, oka := pos[jobs[a].ID]
		pb, okb := pos[jobs[b].ID]
		switch {
		case oka && okb:
			return pa < pb
		case oka != okb:
			return oka
		}
		return false
	})
	return jobs
}

// jobReason is the parenthesised detail of a job's state: its reason, and
// for a job waiting to be retried "retry N of M after: <why the last attempt
// failed>" (or, after an infrastructure fault, "rescheduled N of M after:
// <the fault>").
func jobReason(j *api.Job) string {
	if j.State == api.StatePending && len(j.History) > 0 && !strings.HasPrefix(j.Reason, "retry") &&
		!strings.HasPrefix(j.Reason, "rescheduled") {
		last := j.History[len(j.History)-1]
		why := last.Reason
		if why == "" {
			why = j.Reason
		}
		if why == "" {
			why = strings.ToLower(last.State)
		}
		if last.Kind == "reschedule" {
			if j.Spec != nil && j.Spec.Reschedule != nil {
				return fmt.Sprintf("rescheduled %d of %d after: %s", j.RescheduleAttempts, j.Spec.Reschedule.Attempts, why)
			}
			return fmt.Sprintf("rescheduled %d after: %s", j.RescheduleAttempts, why)
		}
		if j.Spec != nil && j.Spec.Retry.Attempts > 0 {
			return fmt.Sprintf("retry %d of %d after: %s", len(j.History), j.Spec.Retry.Attempts, why)
		}
		return fmt.Sprintf("retry %d after: %s", len(j.History), why)
	}
	return j.Reason
}

// firstLine is the first line of s, with "…" when more follow.
func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i] + " …"
	}
	return s
}
