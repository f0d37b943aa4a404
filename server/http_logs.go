package server

import (
	"context"
	"encoding/json"
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

func (s *Server) handleJobLogs(w http.ResponseWriter, r *http.Request) (any, error) {
	job, err := s.State().JobByIDPrefix(nil, r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	follow, err := parseBool(r, "follow")
	if err != nil {
		return nil, err
	}
	after, err := parseAfter(r)
	if err != nil {
		return nil, err
	}
	step := r.URL.Query().Get("step")
	if step != "" && !hasStep(job, step) {
		return nil, &HTTPError{Code: http.StatusNotFound, Msg: "job " + job.Name + " has no step " + strconv.Quote(step)}
	}
	s.streamLogs(r.Context(), w, []string{job.ID}, step, after, follow, func(ws memdb.WatchSet) bool {
		j, err := s.State().JobByID(ws, job.ID)
		return err != nil || j == nil || j.State.Terminal()
	})
	return streamed{}, nil
}

func (s *Server) handlePipelineLogs(w http.ResponseWriter, r *http.Request) (any, error) {
	p, err := s.State().PipelineByIDPrefix(nil, r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	follow, err := parseBool(r, "follow")
	if err != nil {
		return nil, err
	}
	s.streamLogs(r.Context(), w, p.JobIDs, "", 0, follow, func(ws memdb.WatchSet) bool {
		cur, err := s.State().PipelineByID(ws, p.ID)
		return err != nil || cur == nil || cur.State.Terminal()
	})
	return streamed{}, nil
}

func hasStep(j *structs.Job, name string) bool {
	for _, st := range j.Steps {
		if st.Name == name {
			return true
		}
	}
	return false
}

func parseAfter(r *http.Request) (uint64, error) {
	v := r.URL.Query().Get("after")
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, badRequest("invalid after %q: want a log sequence number", v)
	}
	return n, nil
}

// streamLogs writes the jobs' log entries as NDJSON. With follow it keeps
// going until done reports true (the job or pipeline ended) and every line
// that arrived before that was written; it waits on the log store's and the
// state store's notifications, never polling.
func (s *Server) streamLogs(ctx context.Context, w http.ResponseWriter, jobIDs []string, step string, after uint64, follow bool, done func(memdb.WatchSet) bool) {
	s.streamLogsFiltered(ctx, w, jobIDs, step, after, follow, done, nil)
}

// streamLogsFiltered is streamLogs writing only the entries keep accepts
// (all when keep is nil).
func (s *Server) streamLogsFiltered(ctx context.Context, w http.ResponseWriter, jobIDs []string, step string, after uint64, follow bool, done func(memdb.WatchSet) bool, keep func(*api.LogEntry) bool) {
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	enc := json.NewEncoder(w)
	last := make([]uint64, len(jobIDs))
	for i := range last {
		last[i] = after
	}
	heartbeat := time.NewTicker(logHeartbeat)
	defer heartbeat.Stop()
	for {
		// Check "done" before reading, so lines written before the final
		// state change are all read in this pass.
		ws := memdb.NewWatchSet()
		finished := done(ws)
		notify := make([]<-chan struct{}, 0, len(jobIDs))
		for i, id := range jobIDs {
			entries, seen, ch, err := s.logs.Read(id, step, last[i])
			if err != nil {
				s.log.Warn("read logs", "job", id, "err", err)
				return
			}
			for _, e := range entries {
				if keep != nil && !keep(e) {
					continue
				}
				if err := enc.Encode(e); err != nil {
					return
				}
			}
			last[i] = seen
			notify = append(notify, ch)
		}
		if flusher != nil {
			flusher.Flush()
		}
		if !follow || finished {
			return
		}
		switch waitAny(ctx, ws, notify, heartbeat.C) {
		case waitEnded:
			return
		case waitHeartbeat:
			if _, err := w.Write([]byte("\n")); err != nil {
				return
			}
		}
	}
}

type waitResult int

const (
	waitFired waitResult = iota
	waitHeartbeat
	waitEnded
)

// waitAny blocks until the watch set fires, a log channel closes, the
// heartbeat ticks or ctx ends.
func waitAny(ctx context.Context, ws memdb.WatchSet, chans []<-chan struct{}, tick <-chan time.Time) waitResult {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	fired := make(chan struct{}, 1)
	signal := func() {
		select {
		case fired <- struct{}{}:
		default:
		}
		cancel()
	}
	for _, ch := range chans {
		go func(ch <-chan struct{}) {
			select {
			case <-ch:
				signal()
			case <-wctx.Done():
			}
		}(ch)
	}
	go func() {
		if ws.WatchCtx(wctx) == nil {
			signal()
		}
	}()
	select {
	case <-ctx.Done():
		return waitEnded
	case <-fired:
		return waitFired
	case <-tick:
		return waitHeartbeat
	}
}
