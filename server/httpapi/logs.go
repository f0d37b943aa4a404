package httpapi

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/hashicorp/go-memdb"

	"github.com/ciplat/ciplat/api"
	"github.com/ciplat/ciplat/fsm/structs"
)

// logHeartbeat is how often a follow stream writes an empty line so proxies
// and clients know it is alive.
const logHeartbeat = 15 * time.Second

func (a *API) handleJobLogs(w http.ResponseWriter, r *http.Request) (any, error) {
	job, err := a.b.State().JobByIDPrefix(nil, r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	follow, after, err := parseFollow(r)
	if err != nil {
		return nil, err
	}
	step := r.URL.Query().Get("step")
	if step != "" && !hasStep(job, step) {
		return nil, &HTTPError{Code: http.StatusNotFound, Msg: "job " + job.Name + " has no step " + strconv.Quote(step)}
	}
	if after, err = a.tailStart(r, job.ID, after, logMatcher(step, nil)); err != nil {
		return nil, err
	}
	a.streamLogs(r.Context(), w, []string{job.ID}, step, after, follow, func(ws memdb.WatchSet) bool {
		j, err := a.b.State().JobByID(ws, job.ID)
		return err != nil || j == nil || j.State.Terminal()
	})
	return Streamed{}, nil
}

func (a *API) handlePipelineLogs(w http.ResponseWriter, r *http.Request) (any, error) {
	p, err := a.b.State().PipelineByIDPrefix(nil, r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	follow, err := parseBool(r, "follow")
	if err != nil {
		return nil, err
	}
	a.streamLogs(r.Context(), w, p.JobIDs, "", 0, follow, func(ws memdb.WatchSet) bool {
		cur, err := a.b.State().PipelineByID(ws, p.ID)
		return err != nil || cur == nil || cur.State.Terminal()
	})
	return Streamed{}, nil
}

// logTailMax bounds ?tail.
const logTailMax = 100000

// tailStart applies ?tail=N (the last N entries that match; match nil: all)
// to a read that starts after `after`: it returns where the read starts.
func (a *API) tailStart(r *http.Request, jobID string, after uint64, match func(*api.LogEntry) bool) (uint64, error) {
	v := r.URL.Query().Get("tail")
	if v == "" {
		return after, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 || n > logTailMax {
		return 0, BadRequest("invalid tail %q: want a number of log lines from 0 to %d", v, logTailMax)
	}
	start, err := a.b.LogStore().TailAfter(jobID, n, match)
	if err != nil {
		return 0, err
	}
	return max(after, start), nil
}

// logMatcher is the filter of a read of one step (step may be "") and
// keep (may be nil); nil when it lets every entry through.
func logMatcher(step string, keep func(*api.LogEntry) bool) func(*api.LogEntry) bool {
	if step == "" && keep == nil {
		return nil
	}
	return func(e *api.LogEntry) bool {
		return (step == "" || e.Step == step) && (keep == nil || keep(e))
	}
}

func hasStep(j *structs.Job, name string) bool {
	for _, st := range j.Steps {
		if st.Name == name {
			return true
		}
	}
	return false
}

// parseFollow reads a log read's ?follow and ?after (job and worker logs).
func parseFollow(r *http.Request) (follow bool, after uint64, err error) {
	if follow, err = parseBool(r, "follow"); err != nil {
		return false, 0, err
	}
	after, err = parseAfter(r)
	return follow, after, err
}

func parseAfter(r *http.Request) (uint64, error) {
	v := r.URL.Query().Get("after")
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, BadRequest("invalid after %q: want a log sequence number", v)
	}
	return n, nil
}

// streamLogs writes the jobs' log entries as NDJSON. With follow it keeps
// going until done reports true (the job or pipeline ended) and every line
// that arrived before that was written; it waits on the log store's and the
// state store's notifications, never polling.
func (a *API) streamLogs(ctx context.Context, w http.ResponseWriter, jobIDs []string, step string, after uint64, follow bool, done func(memdb.WatchSet) bool) {
	a.streamLogsFiltered(ctx, w, jobIDs, step, after, follow, done, nil)
}

// logCopyBuffer is the one buffer a log stream reads its files through.
const logCopyBuffer = 32 * 1024

// streamLogsFiltered is streamLogs writing only the entries keep accepts
// (all when keep is nil).
//
// Memory per stream is bounded: files are copied through one buffer
// (LogStore.CopyAfter, or ScanAfter when entries are filtered), never
// loaded. Every write and flush has a deadline (Config.Logs.WriteTimeout), so a
// reader that stops reading is dropped instead of pinning the stream. A
// follow subscribes to its jobs and, once caught up, reads only the jobs
// that got lines (LogSubscription): following a pipeline of thousands of
// jobs costs nothing while they are quiet.
func (a *API) streamLogsFiltered(ctx context.Context, w http.ResponseWriter, jobIDs []string, step string, after uint64, follow bool, done func(memdb.WatchSet) bool, keep func(*api.LogEntry) bool) {
	var sub LogSubscription
	if follow {
		var err error
		if sub, err = a.b.LogStore().Subscribe(jobIDs); err != nil {
			WriteError(w, err)
			return
		}
		defer sub.Close()
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	out := NewDeadlineWriter(w, a.cfg.WriteTimeout)
	buf := make([]byte, logCopyBuffer)
	last := make([]uint64, len(jobIDs))
	pending := make([]int, len(jobIDs))
	for i := range last {
		last[i] = after
		pending[i] = i
	}
	heartbeat := time.NewTicker(logHeartbeat)
	defer heartbeat.Stop()
	for {
		// Check "done" before reading, so lines written before the final
		// state change are all read in this pass.
		ws := memdb.NewWatchSet()
		finished := done(ws)
		for _, i := range pending {
			seen, err := a.copyLogs(out, buf, jobIDs[i], step, last[i], keep)
			if err != nil {
				if !out.Failed() {
					a.log.Warn("read logs", "job", jobIDs[i], "err", err)
				}
				return
			}
			last[i] = seen
		}
		if out.Flush() != nil {
			return
		}
		if !follow || finished {
			out.End()
			return
		}
		for waiting := true; waiting; {
			switch waitAny(ctx, ws, sub.C(), heartbeat.C) {
			case waitEnded:
				return
			case waitHeartbeat:
				if _, err := out.Write([]byte("\n")); err != nil || out.Flush() != nil {
					return
				}
			default:
				waiting = false
			}
		}
		pending = sub.Take()
	}
}

// copyLogs writes jobID's entries after `after` (of one step, and those keep
// accepts) to w and returns the newest Seq it looked at.
func (a *API) copyLogs(w io.Writer, buf []byte, jobID, step string, after uint64, keep func(*api.LogEntry) bool) (uint64, error) {
	if step == "" && keep == nil {
		return a.b.LogStore().CopyAfter(w, buf, jobID, after)
	}
	return a.b.LogStore().ScanAfter(jobID, after, func(e *api.LogEntry, raw []byte) error {
		if (step != "" && e.Step != step) || (keep != nil && !keep(e)) {
			return nil
		}
		if _, err := w.Write(raw); err != nil {
			return err
		}
		_, err := w.Write([]byte("\n"))
		return err
	})
}

type waitResult int

const (
	waitFired waitResult = iota
	waitHeartbeat
	waitEnded
)

// waitAny blocks until the watch set fires, the log subscription is
// signalled, the heartbeat ticks or ctx ends.
func waitAny(ctx context.Context, ws memdb.WatchSet, logs <-chan struct{}, tick <-chan time.Time) waitResult {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	fired := make(chan struct{})
	go func() {
		if ws.WatchCtx(wctx) == nil {
			close(fired)
		}
	}()
	select {
	case <-ctx.Done():
		return waitEnded
	case <-fired:
		return waitFired
	case <-logs:
		return waitFired
	case <-tick:
		return waitHeartbeat
	}
}

// checkLogJobs refuses a log push, before anything is written, when one of
// its jobs is unknown (404) or has ended (409): logs are only taken for a
// job that a client may still be running.
func (a *API) checkLogJobs(jobIDs []string) error {
	st := a.b.State()
	for _, id := range jobIDs {
		j, err := st.JobByID(nil, id)
		if err != nil {
			return err
		}
		if j == nil {
			return &HTTPError{Code: http.StatusNotFound, Msg: "job " + id + " not found: logs are only taken for a job of a pipeline"}
		}
		if j.State.Terminal() {
			return &HTTPError{Code: http.StatusConflict, Msg: "job " + id + " is " + string(j.State) + ": it takes no more logs"}
		}
	}
	return nil
}
