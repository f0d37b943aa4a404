package httpapi

import (
	"net/http"

	"github.com/hashicorp/go-memdb"

	"github.com/ciplat/ciplat/fsm/state"
	"github.com/ciplat/ciplat/fsm/structs"
)

func (a *API) handleJobGet(w http.ResponseWriter, r *http.Request) (any, error) {
	q, err := ParseQuery(r)
	if err != nil {
		return nil, err
	}
	id := r.PathValue("id")
	var out *jobView
	idx, err := a.b.State().BlockingQuery(r.Context(), q.Index, q.Wait, func(ws memdb.WatchSet, st *state.StateStore) (uint64, error) {
		j, err := st.JobByIDPrefix(ws, id)
		if err != nil {
			return 0, err
		}
		out = newJobView(j)
		return st.Index(state.TableJobs), nil
	})
	if err != nil {
		return nil, err
	}
	SetIndex(w, idx)
	return out, nil
}

func (a *API) handleEvalList(w http.ResponseWriter, r *http.Request) (any, error) {
	status := r.URL.Query().Get("status")
	if status == "" {
		status = structs.EvalPending
	}
	switch status {
	case structs.EvalPending, structs.EvalBlocked, structs.EvalComplete, structs.EvalFailed, structs.EvalCancelled:
	default:
		return nil, BadRequest("invalid status %q: want pending, blocked, complete, failed or cancelled", status)
	}
	evals, err := a.b.State().EvalsByStatus(nil, status)
	if err != nil {
		return nil, err
	}
	SetIndex(w, a.b.State().Index(state.TableEvals))
	if evals == nil {
		evals = []*structs.Evaluation{}
	}
	return evals, nil
}
