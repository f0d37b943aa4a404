package command

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ciplat/ciplat/api"
)

// pipelineRunCommand submits a pipeline spec and follows it to its end.
type pipelineRunCommand struct{}

func (*pipelineRunCommand) Synopsis() string {
	return "Submit a pipeline and follow its logs until it ends"
}

const pipelineRunUsage = `Usage: ciplat pipeline run [flags] FILE

  Submit the pipeline spec in FILE (YAML or JSON; "-" reads standard input),
  then follow it: print every step's output as "[job/step] line", each job's
  state changes as "==> job: STATE (reason)", and, once the pipeline has
  ended, a summary of its jobs.

  Exit code: 0 when the pipeline SUCCEEDED (or was submitted, with -detach),
  1 when it FAILED or was CANCELLED or the agent failed, 2 for an invalid
  spec or bad flags. Ctrl-C stops following; the pipeline keeps running.

Flags:

  -detach
    Return once the pipeline is submitted; print its ID and do not follow.

  -idempotency-key=<key>
    Submitting the same spec again with the same key returns the first
    pipeline instead of starting a second one (safe retries from scripts).
    Another spec with a key still in use is refused (409); keys are
    forgotten after the agent's -idempotency-ttl (default 24h).
` + addressHelp + `
Example:

  $ ciplat pipeline run examples/ci.yml
  ==> Pipeline ci submitted: 3f2a9c1d-5b7e-4a8e-9c0d-1e2f3a4b5c6d
  ==> build: RUNNING
  [build/compile] go build ./...
  ==> build: SUCCEEDED
  ...
  ==> Pipeline 3f2a9c1d-5b7e-4a8e-9c0d-1e2f3a4b5c6d SUCCEEDED in 12.345s
`

// Tunables of the follow; variables so tests can shorten them.
var (
	// logGrace is how long the log stream may still run after the pipeline
	// has ended (the server closes it then; this only guards against a
	// stream that never ends).
	logGrace = 10 * time.Second
	// watchRetries is how many failed state reads in a row are retried
	// (agent restarting, leader election) before the follow gives up.
	watchRetries = 5
	// watchBackoff is the first pause after a failed state read; it doubles.
	watchBackoff = 500 * time.Millisecond
)

func (c *pipelineRunCommand) Run(ui *UI, args []string) int {
	m := newClientMeta(ui, "pipeline run", pipelineRunUsage)
	detach := m.fs.Bool("detach", false, "do not follow")
	key := m.fs.String("idempotency-key", "", "idempotency key")
	pos, code, ok := m.parse(args, 1, 1)
	if !ok {
		return code
	}
	file := pos[0]
	spec, err := readSpec(ui, file)
	if err != nil {
		ui.errorf("%v", err)
		return exitUsage
	}
	cl, code, ok := m.clientOrExit()
	if !ok {
		return code
	}
	p, err := cl.SubmitPipeline(context.Background(), spec, &api.SubmitOptions{
		IdempotencyKey: *key,
		ContentType:    specContentType(file, spec),
	})
	if err != nil {
		return submitError(m, cl, file, err)
	}
	fmt.Fprintf(ui.Stdout, "==> Pipeline %s submitted: %s\n", p.Name, p.ID)
	if *detach {
		return exitOK
	}
	return newFollower(ui, cl, p).run()
}

// readSpec reads FILE, or standard input for "-".
func readSpec(ui *UI, file string) ([]byte, error) {
	var (
		b   []byte
		err error
	)
	name := file
	if file == "-" {
		name = "standard input"
		b, err = io.ReadAll(ui.Stdin)
	} else {
		b, err = os.ReadFile(file)
	}
	if err != nil {
		return nil, fmt.Errorf("cannot read pipeline spec: %v", err)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, fmt.Errorf("pipeline spec %s is empty: write a YAML pipeline with a name and jobs", name)
	}
	return b, nil
}

// specContentType is JSON for a .json file or a body that starts with '{',
// YAML otherwise.
func specContentType(file string, spec []byte) string {
	if strings.EqualFold(filepath.Ext(file), ".json") || bytes.HasPrefix(bytes.TrimSpace(spec), []byte("{")) {
		return "application/json"
	}
	return "application/yaml"
}

// submitError reports a failed submit: an invalid spec lists every problem
// the server found, one per line.
func submitError(m *meta, cl *api.Client, file string, err error) int {
	var ae *api.Error
	if !errors.As(err, &ae) {
		return m.apiError(cl, "submit pipeline", err)
	}
	switch ae.StatusCode {
	case http.StatusBadRequest:
		if strings.HasPrefix(ae.Message, "Idempotency-Key") {
			m.ui.errorf("invalid -idempotency-key: %s", ae.Message)
			return exitUsage
		}
		msg := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(ae.Message), "invalid pipeline spec:"))
		var lines []string
		for _, l := range strings.Split(msg, "\n") {
			if l = strings.TrimSpace(l); l != "" {
				lines = append(lines, l)
			}
		}
		if len(lines) <= 1 {
			m.ui.errorf("invalid pipeline spec: %s", msg)
		} else {
			m.ui.errorf("invalid pipeline spec:")
			for _, l := range lines {
				fmt.Fprintf(m.ui.Stderr, "  %s\n", l)
			}
		}
		return exitUsage
	case http.StatusRequestEntityTooLarge:
		m.ui.errorf("pipeline spec %s is too large: %s", file, ae.Message)
		return exitUsage
	}
	return m.apiError(cl, "submit pipeline", err)
}

// follower prints a submitted pipeline's logs and job transitions until it
// ends. Two goroutines feed it: the log stream and a blocking-query watch of
// the pipeline's state; both write through print, under mu, so lines never
// interleave.
type follower struct {
	ui *UI
	cl *api.Client
	id string

	mu    sync.Mutex
	names map[string]string // job ID → name, for log lines without one
	seen  map[string]string // job ID → the last transition printed
}

func newFollower(ui *UI, cl *api.Client, p *api.Pipeline) *follower {
	f := &follower{ui: ui, cl: cl, id: p.ID, names: map[string]string{}, seen: map[string]string{}}
	f.observe(p)
	return f
}

// run follows until the pipeline has ended and its log stream is drained,
// then prints the summary. Ctrl-C stops following without cancelling.
func (f *follower) run() int {
	ctx, stop := f.ui.interrupt(context.Background())
	defer stop()
	logCtx, stopLogs := context.WithCancel(ctx)
	defer stopLogs()

	logDone := make(chan error, 1)
	go func() {
		logDone <- f.cl.PipelineLogs(logCtx, f.id, &api.LogOptions{Follow: true}, f.printLog)
	}()
	type watchResult struct {
		p   *api.Pipeline
		err error
	}
	watchDone := make(chan watchResult, 1)
	go func() {
		p, err := f.watch(ctx)
		watchDone <- watchResult{p, err}
	}()

	var (
		final               *api.Pipeline
		logsOpen, watchOpen = true, true
		grace               <-chan time.Time
	)
	// finish stops both goroutines and waits for them, so nothing prints
	// after the command returns.
	finish := func() {
		stopLogs()
		if logsOpen {
			<-logDone //nolint:errcheck // the stream's end; its error was reported when it happened
		}
		if watchOpen {
			<-watchDone
		}
	}
	for logsOpen || watchOpen {
		select {
		case <-ctx.Done():
			stop()
			finish()
			f.interrupted()
			return exitFailure
		case err := <-logDone:
			logsOpen = false
			if err != nil && logCtx.Err() == nil {
				fmt.Fprintf(f.ui.Stderr, "==> Stopped streaming logs (%s); waiting for the pipeline to finish\n",
					describeError(f.cl, "read logs", err))
			}
		case r := <-watchDone:
			watchOpen = false
			if r.err != nil {
				finish()
				if ctx.Err() != nil {
					f.interrupted()
					return exitFailure
				}
				f.ui.errorf("%s; it may still be running: ciplat pipeline status %s",
					describeError(f.cl, "watch pipeline "+f.id, r.err), f.id)
				return exitFailure
			}
			final = r.p
			grace = time.After(logGrace)
		case <-grace:
			stopLogs() // the stream outlived the pipeline: stop waiting for it
		}
	}
	f.summary(final)
	if final.State == api.StateSucceeded {
		return exitOK
	}
	return exitFailure
}

func (f *follower) interrupted() {
	fmt.Fprintf(f.ui.Stderr, "\n==> Stopped following. Pipeline %s keeps running; cancel it with:\n    ciplat pipeline cancel %s\n", f.id, f.id)
}

// watch reads the pipeline with blocking queries, printing job transitions,
// until the pipeline is terminal. Failed reads are retried with backoff,
// except answers that will not change (4xx).
func (f *follower) watch(ctx context.Context) (*api.Pipeline, error) {
	var index uint64
	failures := 0
	for {
		p, qm, err := f.cl.Pipeline(ctx, f.id, &api.QueryOptions{WaitIndex: index})
		if err != nil {
			var ae *api.Error
			permanent := errors.As(err, &ae) && ae.StatusCode < 500 && ae.StatusCode != http.StatusTooManyRequests
			if ctx.Err() != nil || permanent || failures >= watchRetries {
				return nil, err
			}
			wait := watchBackoff << failures
			if ae != nil && ae.RetryAfter > wait {
				wait = ae.RetryAfter
			}
			failures++
			if !sleepCtx(ctx, wait) {
				return nil, ctx.Err()
			}
			continue
		}
		failures = 0
		f.observe(p)
		if api.TerminalState(p.State) {
			return p, nil
		}
		if qm.LastIndex == 0 || qm.LastIndex < index {
			// No usable index (an agent without blocking queries): poll.
			if !sleepCtx(ctx, time.Second) {
				return nil, ctx.Err()
			}
		}
		index = qm.LastIndex
	}
}

// observe records job names and prints the transitions of p's jobs since
// the last look. A job first seen PENDING on its first attempt is where
// every job starts, so it is not printed.
func (f *follower) observe(p *api.Pipeline) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, j := range orderedJobs(p) {
		f.names[j.ID] = j.Name
		reason := jobReason(j)
		key := j.State + "|" + strconv.Itoa(j.Attempt) + "|" + reason
		prev, known := f.seen[j.ID]
		f.seen[j.ID] = key
		if prev == key || (!known && j.State == api.StatePending && len(j.History) == 0) {
			continue
		}
		line := "==> " + j.Name + ": " + f.colorState(j.State)
		if reason != "" {
			line += " (" + reason + ")"
		}
		fmt.Fprintln(f.ui.Stdout, line)
	}
}

// printLog prints one log entry as "[job/step] line".
func (f *follower) printLog(e *api.LogEntry) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	job := e.JobName
	if job == "" {
		job = f.names[e.JobID]
	}
	if job == "" {
		job = shortID(e.JobID)
	}
	prefix := "[" + job + "/" + e.Step + "]"
	if f.ui.Color {
		c := ansiCyan
		if e.Stream == "stderr" {
			c = ansiYellow
		}
		prefix = c + prefix + ansiReset
	}
	_, err := fmt.Fprintf(f.ui.Stdout, "%s %s\n", prefix, e.Line)
	return err
}

// summary prints the table of jobs and the pipeline's outcome.
func (f *follower) summary(p *api.Pipeline) {
	now := f.ui.now()
	fmt.Fprintln(f.ui.Stdout)
	tw := newTable(f.ui.Stdout)
	fmt.Fprintln(tw, "JOB\tSTATE\tATTEMPTS\tDURATION")
	var last time.Time
	for _, j := range orderedJobs(p) {
		d := "-"
		if !j.StartedAt.IsZero() && !j.FinishedAt.IsZero() {
			d = fmtDuration(j.FinishedAt.Sub(j.StartedAt))
		}
		if j.FinishedAt.After(last) {
			last = j.FinishedAt
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", j.Name, j.State, j.Attempt, d)
	}
	tw.Flush()
	end := p.FinishedAt
	if end.IsZero() {
		end = last
	}
	if end.IsZero() {
		end = now
	}
	fmt.Fprintf(f.ui.Stdout, "==> Pipeline %s %s in %s\n", p.ID, f.colorState(p.State), fmtDuration(end.Sub(p.SubmittedAt)))
}

// ANSI colours, used only when UI.Color is set.
const (
	ansiReset  = "\x1b[0m"
	ansiRed    = "\x1b[31m"
	ansiGreen  = "\x1b[32m"
	ansiYellow = "\x1b[33m"
	ansiCyan   = "\x1b[36m"
)

func (f *follower) colorState(s string) string {
	if !f.ui.Color {
		return s
	}
	switch s {
	case api.StateSucceeded:
		return ansiGreen + s + ansiReset
	case api.StateFailed, api.StateTerminated, api.StateCancelled:
		return ansiRed + s + ansiReset
	case api.StatePending:
		return ansiYellow + s + ansiReset
	}
	return s
}

// sleepCtx waits d or until ctx ends; it reports whether d passed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
