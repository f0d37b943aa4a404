package httpapi

import (
	"cmp"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-memdb"

	"github.com/ciplat/ciplat/api"
	"github.com/ciplat/ciplat/fsm/state"
	"github.com/ciplat/ciplat/fsm/structs"
)

// The Worker Manager API. A worker is the ephemeral environment (container,
// process group) a client creates for one job attempt: one per allocation,
// named by the allocation's ID, so workers are derived from allocations and
// what their clients reported about them (structs.Allocation.Worker).

// workerStopReason is the reason a job's attempt ends with when an operator
// terminates its worker.
const workerStopReason = "worker terminated by operator"

// workerView is a worker as the API shows it (api.Worker).
type workerView = api.Worker

// newWorkerView builds the view of a's worker at now; j and n may be nil.
func newWorkerView(a *structs.Allocation, j *structs.Job, n *structs.Node, now time.Time) *workerView {
	v := &workerView{
		ID:            a.ID,
		NodeID:        a.NodeID,
		JobID:         a.JobID,
		PipelineID:    a.PipelineID,
		Attempt:       a.Attempt,
		State:         a.WorkerState(),
		Live:          a.Live(),
		DesiredStatus: a.DesiredStatus,
		ClientStatus:  a.ClientStatus,
		CreatedAt:     a.CreatedAt,
	}
	if w := a.Worker; w != nil {
		v.Driver, v.HandleID, v.Image = w.Driver, w.HandleID, w.Image
		v.Reason, v.StopRequested = w.Reason, w.StopRequested
		v.StartedAt, v.EndedAt = w.StartedAt, w.EndedAt
	}
	if j != nil {
		v.JobName = j.Name
		if j.Spec != nil {
			if v.Image == "" {
				v.Image = j.Spec.Image
			}
			if v.Driver == "" {
				v.Driver = j.Spec.Driver
			}
		}
		if v.Reason == "" && !v.Live && j.AllocID == a.ID {
			v.Reason = j.Reason
		}
	}
	if v.Reason == "" && a.PreemptedBy != "" {
		v.Reason = "preempted by allocation " + a.PreemptedBy
	}
	if n != nil {
		v.NodeName = n.Name
	}
	end := now
	if !v.Live && !v.EndedAt.IsZero() {
		end = v.EndedAt
	}
	if !a.CreatedAt.IsZero() && end.After(a.CreatedAt) {
		v.Age = end.Sub(a.CreatedAt).Round(time.Second).String()
	} else {
		v.Age = "0s"
	}
	return v
}

// workerViewOf reads the job and node of a and builds its view.
func (h *API) workerViewOf(st *state.StateStore, ws memdb.WatchSet, a *structs.Allocation) (*workerView, error) {
	j, err := st.JobByID(ws, a.JobID)
	if err != nil {
		return nil, err
	}
	n, err := st.NodeByID(ws, a.NodeID)
	if err != nil {
		return nil, err
	}
	return newWorkerView(a, j, n, h.b.Now()), nil
}

// resolveWorker finds a worker's allocation by ID or unique ID prefix.
func resolveWorker(st *state.StateStore, ws memdb.WatchSet, id string) (*structs.Allocation, error) {
	a, err := st.AllocByID(ws, id)
	if err != nil || a != nil {
		return a, err
	}
	allocs, err := st.Allocs(ws)
	if err != nil {
		return nil, err
	}
	a, err = uniquePrefix("worker", id, allocs, func(a *structs.Allocation) string { return a.ID })
	if err != nil {
		return nil, err
	}
	if a == nil {
		return nil, &HTTPError{Code: http.StatusNotFound, Msg: "worker " + id + " not found (ciplat worker list shows them)"}
	}
	return a, nil
}

// workerMaxPerPage bounds ?per_page of GET /v1/workers.
const workerMaxPerPage = 1000

// handleWorkerList is GET /v1/workers: the live workers of every node,
// newest first; ?all=true includes the ones that ended. With
// ?per_page=N it answers at most N and, when more follow, the
// X-Ciplat-Next-Token header: pass it as ?next_token for the next page
// (Nomad's pagination). A token names the first worker of the next page
// by its creation time and ID, so a page boundary stays put while workers
// come and go; a token whose worker is gone starts at the next older one.
func (h *API) handleWorkerList(w http.ResponseWriter, r *http.Request) (any, error) {
	all, err := parseBool(r, "all")
	if err != nil {
		return nil, err
	}
	q, err := ParseQuery(r)
	if err != nil {
		return nil, err
	}
	perPage, next, err := parseWorkerPage(r)
	if err != nil {
		return nil, err
	}
	var out []*workerView
	var nextToken string
	idx, err := h.b.State().BlockingQuery(r.Context(), q.Index, q.Wait, func(ws memdb.WatchSet, st *state.StateStore) (uint64, error) {
		allocs, err := st.Allocs(ws)
		if err != nil {
			return 0, err
		}
		picked := make([]*structs.Allocation, 0, len(allocs))
		for _, a := range allocs {
			if (all || a.Live()) && (next == nil || !next.before(a)) {
				picked = append(picked, a)
			}
		}
		slices.SortFunc(picked, func(x, y *structs.Allocation) int {
			if c := y.CreatedAt.Compare(x.CreatedAt); c != 0 {
				return c
			}
			return cmp.Compare(x.ID, y.ID)
		})
		nextToken = ""
		if perPage > 0 && len(picked) > perPage {
			nextToken = workerToken(picked[perPage])
			picked = picked[:perPage]
		}
		out = make([]*workerView, 0, len(picked))
		for _, a := range picked {
			v, err := h.workerViewOf(st, nil, a)
			if err != nil {
				return 0, err
			}
			out = append(out, v)
		}
		return st.Index(state.TableAllocs), nil
	})
	if err != nil {
		return nil, err
	}
	SetIndex(w, idx)
	if nextToken != "" {
		w.Header().Set("X-Ciplat-Next-Token", nextToken)
	}
	return out, nil
}

// workerCursor is a decoded next_token: the first worker of a page.
type workerCursor struct {
	created int64 // CreatedAt, Unix nanoseconds
	id      string
}

// before reports whether a sorts before the cursor (newer, or as new with
// a smaller ID): it belongs to an earlier page.
func (c *workerCursor) before(a *structs.Allocation) bool {
	if n := a.CreatedAt.UnixNano(); n != c.created {
		return n > c.created
	}
	return a.ID < c.id
}

// workerToken is the next_token naming a as the first of a page.
func workerToken(a *structs.Allocation) string {
	return strconv.FormatInt(a.CreatedAt.UnixNano(), 10) + "." + a.ID
}

// parseWorkerPage reads ?per_page (0: no paging) and ?next_token.
func parseWorkerPage(r *http.Request) (int, *workerCursor, error) {
	q := r.URL.Query()
	perPage := 0
	if v := q.Get("per_page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > workerMaxPerPage {
			return 0, nil, BadRequest("invalid per_page %q: want 1 to %d", v, workerMaxPerPage)
		}
		perPage = n
	}
	v := q.Get("next_token")
	if v == "" {
		return perPage, nil, nil
	}
	ns, id, ok := strings.Cut(v, ".")
	n, err := strconv.ParseInt(ns, 10, 64)
	if !ok || err != nil || id == "" {
		return 0, nil, BadRequest("invalid next_token %q: pass the X-Ciplat-Next-Token of the previous page", v)
	}
	return perPage, &workerCursor{created: n, id: id}, nil
}

// handleWorkerGet is GET /v1/workers/{id}.
func (h *API) handleWorkerGet(w http.ResponseWriter, r *http.Request) (any, error) {
	q, err := ParseQuery(r)
	if err != nil {
		return nil, err
	}
	id := r.PathValue("id")
	var out *workerView
	idx, err := h.b.State().BlockingQuery(r.Context(), q.Index, q.Wait, func(ws memdb.WatchSet, st *state.StateStore) (uint64, error) {
		a, err := resolveWorker(st, ws, id)
		if err != nil {
			return 0, err
		}
		if out, err = h.workerViewOf(st, nil, a); err != nil {
			return 0, err
		}
		return st.Index(state.TableAllocs), nil
	})
	if err != nil {
		return nil, err
	}
	SetIndex(w, idx)
	return out, nil
}

// handleWorkerStop is DELETE /v1/workers/{id}: the worker's allocation is
// stopped through Raft (its client destroys the worker) and its job is
// retried or fails per its policy with workerStopReason. Stopping a worker
// that already ended, or is already being stopped, commits nothing and
// answers 200 with the worker as it is.
func (h *API) handleWorkerStop(w http.ResponseWriter, r *http.Request) (any, error) {
	st := h.b.State()
	a, err := resolveWorker(st, nil, r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	if a.Live() && a.DesiredStatus != structs.AllocDesiredStop {
		_, idx, err := h.b.Apply(structs.WorkerStopRequestType, &structs.WorkerStopRequest{
			WriteRequest: structs.WriteRequest{Timestamp: h.b.Now()}, AllocID: a.ID, Reason: workerStopReason})
		if err != nil {
			return nil, err
		}
		SetIndex(w, idx)
		st = h.b.State()
		if a, err = st.AllocByID(nil, a.ID); err != nil || a == nil {
			return nil, err
		}
	} else {
		SetIndex(w, st.Index(state.TableAllocs))
	}
	return h.workerViewOf(st, nil, a)
}

// handleWorkerLogs is GET /v1/workers/{id}/logs: the log lines of the job
// attempt the worker ran (?step, ?follow, ?after, ?tail as for job logs). A follow
// ends when the worker's attempt is no longer the job's current one, or the
// job ended.
func (h *API) handleWorkerLogs(w http.ResponseWriter, r *http.Request) (any, error) {
	a, err := resolveWorker(h.b.State(), nil, r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	follow, after, err := parseFollow(r)
	if err != nil {
		return nil, err
	}
	step := r.URL.Query().Get("step")
	if step != "" {
		j, err := h.b.State().JobByID(nil, a.JobID)
		if err != nil {
			return nil, err
		}
		if j == nil || !hasStep(j, step) {
			return nil, &HTTPError{Code: http.StatusNotFound, Msg: "the job of worker " + a.ID + " has no step " + strconv.Quote(step)}
		}
	}
	attempt := a.Attempt
	ofAttempt := func(e *api.LogEntry) bool { return e.Attempt == attempt }
	if after, err = h.tailStart(r, a.JobID, after, logMatcher(step, ofAttempt)); err != nil {
		return nil, err
	}
	h.streamLogsFiltered(r.Context(), w, []string{a.JobID}, step, after, follow, func(ws memdb.WatchSet) bool {
		cur, err := h.b.State().AllocByID(ws, a.ID)
		if err != nil || cur == nil || !cur.Live() {
			return true
		}
		j, err := h.b.State().JobByID(ws, a.JobID)
		return err != nil || j == nil || j.State.Terminal() || j.AllocID != a.ID
	}, ofAttempt)
	return Streamed{}, nil
}
