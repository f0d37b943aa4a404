package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-memdb"

	"github.com/ciplat/ciplat/fsm/state"
	"github.com/ciplat/ciplat/fsm/structs"
)

// eventHeartbeat is how often an idle event stream writes a heartbeat.
const eventHeartbeat = 10 * time.Second

// eventStreamBatch is how many events one read of the stream takes.
const eventStreamBatch = 1000

// truncatedHeader is set on an event stream whose requested index is older
// than the oldest event kept: the events in between are gone (the value is
// the highest pruned index), the stream starts with the oldest kept.
const truncatedHeader = "X-Ciplat-Events-Truncated"

// eventFilter selects events by topic prefix and key.
type eventFilter struct {
	// prefixes of Topic; empty means every topic.
	prefixes []string
	// keys match an event's Key, PipelineID, JobID or NodeID; empty: any.
	keys map[string]bool
}

// parseEventFilter reads ?topic= (repeatable or comma-separated: a topic
// prefix such as domain.pipeline.job, a NATS-style domain.pipeline.>, or
// *) and ?key= (repeatable or comma-separated IDs).
func parseEventFilter(q map[string][]string) (*eventFilter, error) {
	f := &eventFilter{keys: map[string]bool{}}
	for _, v := range q["topic"] {
		for _, t := range strings.Split(v, ",") {
			t = strings.TrimSpace(t)
			switch t {
			case "":
			case "*", ">":
				f.prefixes = nil
				return f.withKeys(q), nil
			default:
				t = strings.TrimSuffix(strings.TrimSuffix(t, ">"), "*")
				if strings.ContainsAny(t, " *>") {
					return nil, BadRequest("invalid topic %q: give a topic or topic prefix such as domain.pipeline.job", t)
				}
				f.prefixes = append(f.prefixes, t)
			}
		}
	}
	return f.withKeys(q), nil
}

func (f *eventFilter) withKeys(q map[string][]string) *eventFilter {
	for _, v := range q["key"] {
		for _, k := range strings.Split(v, ",") {
			if k = strings.TrimSpace(k); k != "" {
				f.keys[k] = true
			}
		}
	}
	return f
}

func (f *eventFilter) match(e *structs.Event) bool {
	if len(f.keys) > 0 && !f.keys[e.Key] && !f.keys[e.PipelineID] && !f.keys[e.JobID] && !f.keys[e.NodeID] {
		return false
	}
	if len(f.prefixes) == 0 {
		return true
	}
	for _, p := range f.prefixes {
		if strings.HasPrefix(e.Topic, p) {
			return true
		}
	}
	return false
}

// eventCursor is a position in the events table: after (index, seq).
type eventCursor struct{ index, seq uint64 }

// parseEventCursor reads ?index=N (events after index N) or an SSE
// Last-Event-ID "<index>-<seq>" (events after that one).
func parseEventCursor(r *http.Request) (eventCursor, bool, error) {
	if id := r.Header.Get("Last-Event-ID"); id != "" {
		i, s, err := structs.ParseEventID(id)
		if err != nil {
			return eventCursor{}, false, BadRequest("invalid Last-Event-ID: %v", err)
		}
		return eventCursor{i, s}, true, nil
	}
	v := r.URL.Query().Get("index")
	if v == "" {
		return eventCursor{0, math.MaxUint64}, false, nil
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return eventCursor{}, false, BadRequest("invalid index %q: want the Raft index of the last event you saw", v)
	}
	return eventCursor{n, math.MaxUint64}, n > 0, nil
}

// eventWriter writes events as NDJSON or as server-sent events.
type eventWriter struct {
	w   io.Writer
	f   interface{ Flush() error } // nil: nothing to flush
	sse bool
}

func (ew *eventWriter) event(e *structs.Event) error {
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	if ew.sse {
		_, err = fmt.Fprintf(ew.w, "id: %s\nevent: %s\ndata: %s\n\n", e.ID(), e.Topic, b)
		return err
	}
	b = append(b, '\n')
	_, err = ew.w.Write(b)
	return err
}

func (ew *eventWriter) heartbeat() error {
	var err error
	if ew.sse {
		_, err = io.WriteString(ew.w, ": heartbeat\n\n")
	} else {
		_, err = io.WriteString(ew.w, "{}\n")
	}
	if err != nil {
		return err
	}
	return ew.flush()
}

func (ew *eventWriter) fail(msg string) {
	b, _ := json.Marshal(map[string]string{"error": msg})
	if ew.sse {
		_, _ = fmt.Fprintf(ew.w, "event: error\ndata: %s\n\n", b)
	} else {
		_, _ = ew.w.Write(append(b, '\n'))
	}
	_ = ew.flush()
}

func (ew *eventWriter) flush() error {
	if ew.f != nil {
		return ew.f.Flush()
	}
	return nil
}

// handleEventStream is GET /v1/event/stream: the committed events from the
// state's events table, oldest first, then live as they commit, until the
// client goes away. NDJSON by default (heartbeat lines are {}), server-sent
// events with Accept: text/event-stream (id "<index>-<seq>", so a browser's
// EventSource resumes by itself with Last-Event-ID).
func (a *API) handleEventStream(w http.ResponseWriter, r *http.Request) (any, error) {
	f, err := parseEventFilter(r.URL.Query())
	if err != nil {
		return nil, err
	}
	cur, resumed, err := parseEventCursor(r)
	if err != nil {
		return nil, err
	}
	sse := strings.Contains(r.Header.Get("Accept"), "text/event-stream")
	if sse {
		w.Header().Set("Content-Type", "text/event-stream")
	} else {
		w.Header().Set("Content-Type", "application/x-ndjson")
	}
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Accel-Buffering", "no")
	st := a.b.State()
	if pruned := st.EventsPrunedThrough(); resumed && pruned > cur.index {
		w.Header().Set(truncatedHeader, strconv.FormatUint(pruned, 10))
	}
	SetIndex(w, st.Index(state.TableEvents))
	// Every write and flush has a deadline (-log-write-timeout), so a
	// reader that stops reading is dropped instead of pinning the stream.
	out := NewDeadlineWriter(w, a.cfg.WriteTimeout)
	out.WriteHeader(http.StatusOK)
	ew := &eventWriter{w: out, f: out, sse: sse}
	if ew.flush() != nil {
		return Streamed{}, nil
	}
	streamEvents(r.Context(), a.b.State, ew, f, cur, eventHeartbeat)
	if !out.Failed() {
		out.End()
	}
	return Streamed{}, nil
}

// streamEvents writes the events after cur that f selects until ctx ends or
// a write fails, with a heartbeat whenever nothing was written for
// heartbeat. A reader so slow that events it had not read yet were pruned
// gets an error line and the stream ends (it resumes with a fresh read).
func streamEvents(ctx context.Context, stateOf func() *state.StateStore, ew *eventWriter, f *eventFilter, cur eventCursor, heartbeat time.Duration) {
	var seen uint64
	first := true
	lastWrite := time.Now()
	for ctx.Err() == nil {
		wait := max(heartbeat-time.Since(lastWrite), time.Millisecond)
		var evs []*structs.Event
		var pruned uint64
		idx, err := stateOf().BlockingQuery(ctx, seen, wait, func(ws memdb.WatchSet, st *state.StateStore) (uint64, error) {
			var err error
			evs, err = st.EventsAfter(ws, cur.index, cur.seq, eventStreamBatch)
			pruned = st.EventsPrunedThrough()
			idx := st.Index(state.TableEvents)
			if len(evs) > 0 && idx <= seen {
				idx = seen + 1
			}
			return idx, err
		})
		if err != nil {
			return
		}
		seen = idx
		if !first && pruned > cur.index {
			ew.fail(fmt.Sprintf("this reader fell behind: events after index %d were pruned before it read them; read the state again and resume from its index", cur.index))
			return
		}
		first = false
		wrote := false
		for _, e := range evs {
			cur = eventCursor{e.Index, e.Seq}
			if !f.match(e) {
				continue
			}
			if err := ew.event(e); err != nil {
				return
			}
			wrote = true
		}
		if wrote {
			if ew.flush() != nil {
				return
			}
			lastWrite = time.Now()
		} else if time.Since(lastWrite) >= heartbeat {
			if err := ew.heartbeat(); err != nil {
				return
			}
			lastWrite = time.Now()
		}
	}
}
