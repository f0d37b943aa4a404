package server

import (
	"net/http"

	"github.com/hashicorp/go-memdb"

	"github.com/ciplat/ciplat/fsm/state"
	"github.com/ciplat/ciplat/fsm/structs"
)

func (s *Server) handleJobGet(w http.ResponseWriter, r *http.Request) (any, error) {
	q, err := parseQuery(r)
	if err != nil {
		return nil, err
	}
	id := r.PathValue("id")
	var out *jobView
	idx, err := s.State().BlockingQuery(r.Context(), q.index, q.wait, func(ws memdb.WatchSet, st *state.StateStore) (uint64, error) {
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
	setIndex(w, idx)
	return out, nil
}

func (s *Server) handleEvalList(w http.ResponseWriter, r *http.Request) (any, error) {
	status := r.URL.Query().Get("status")
	if status == "" {
		status = structs.EvalPending
	}
	switch status {
	case structs.EvalPending, structs.EvalBlocked, structs.EvalComplete, structs.EvalFailed, structs.EvalCancelled:
	default:
		return nil, badRequest("invalid status %q: want pending, blocked, complete, failed or cancelled", status)
	}
	evals, err := s.State().EvalsByStatus(nil, status)
	if err != nil {
		return nil, err
	}
	setIndex(w, s.State().Index(state.TableEvals))
	if evals == nil {
		evals = []*structs.Evaluation{}
	}
	return evals, nil
}

func (s *Server) handleOpenAPI(w http.ResponseWriter, r *http.Request) (any, error) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(openAPIDoc)
	return streamed{}, nil
}
