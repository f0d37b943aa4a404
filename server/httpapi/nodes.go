package httpapi

import (
	"net/http"

	"github.com/hashicorp/go-memdb"

	"github.com/ciplat/ciplat/fsm/state"
	"github.com/ciplat/ciplat/fsm/structs"
)

// nodeView is a node with what its live allocations hold.
type nodeView struct {
	*structs.Node
	Allocated structs.Resources `json:"allocated"`
}

func nodeViewOf(st *state.StateStore, ws memdb.WatchSet, n *structs.Node) (*nodeView, error) {
	allocs, err := st.AllocsByNode(ws, n.ID)
	if err != nil {
		return nil, err
	}
	v := &nodeView{Node: n}
	for _, a := range allocs {
		if a.Live() {
			v.Allocated = v.Allocated.Add(a.Resources)
		}
	}
	return v, nil
}

func (a *API) handleNodeList(w http.ResponseWriter, r *http.Request) (any, error) {
	q, err := ParseQuery(r)
	if err != nil {
		return nil, err
	}
	var out []*nodeView
	idx, err := a.b.State().BlockingQuery(r.Context(), q.Index, q.Wait, func(ws memdb.WatchSet, st *state.StateStore) (uint64, error) {
		nodes, err := st.Nodes(ws)
		if err != nil {
			return 0, err
		}
		out = make([]*nodeView, 0, len(nodes))
		for _, n := range nodes {
			v, err := nodeViewOf(st, nil, n)
			if err != nil {
				return 0, err
			}
			out = append(out, v)
		}
		return max(st.Index(state.TableNodes), st.Index(state.TableAllocs)), nil
	})
	if err != nil {
		return nil, err
	}
	SetIndex(w, idx)
	return out, nil
}

func (a *API) handleNodeGet(w http.ResponseWriter, r *http.Request) (any, error) {
	st := a.b.State()
	id := r.PathValue("id")
	n, err := st.NodeByID(nil, id)
	if err != nil {
		return nil, err
	}
	if n == nil {
		// Accept a unique prefix, as for pipelines and jobs.
		nodes, err := st.Nodes(nil)
		if err != nil {
			return nil, err
		}
		if n, err = uniquePrefix("node", id, nodes, func(n *structs.Node) string { return n.ID }); err != nil {
			return nil, err
		}
	}
	if n == nil {
		return nil, &HTTPError{Code: http.StatusNotFound, Msg: "node " + id + " not found"}
	}
	SetIndex(w, st.Index(state.TableNodes))
	return nodeViewOf(st, nil, n)
}
