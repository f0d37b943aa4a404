package httpapi

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/hashicorp/go-memdb"

	"github.com/ciplat/ciplat/fsm/state"
	"github.com/ciplat/ciplat/fsm/structs"
)

// The /v1/ui routes are aggregated reads: what one screen of the web UI
// shows, in one round trip, from one consistent view of the state.

// Page sizes of GET /v1/ui/pipelines.
const (
	uiDefaultPerPage = 50
	uiMaxPerPage     = 500
)

// UIPipelinePage is GET /v1/ui/pipelines.
type UIPipelinePage struct {
	Pipelines []*pipelineRow `json:"pipelines"`
	// Total is how many pipelines match the filters (all pages).
	Total int `json:"total"`
	// StateCounts counts the pipelines matching the name filter by state,
	// for the UI's filter buttons.
	StateCounts map[string]int `json:"state_counts"`
	// NextToken, when set, is the next_token that reads the next page.
	NextToken string `json:"next_token,omitempty"`
	// Index is the state's Raft index this page was read at; a WebSocket
	// subscription from it misses nothing.
	Index uint64 `json:"index"`
}

// uiNodeRow is a node with what is placed on it.
type uiNodeRow struct {
	*structs.Node
	Allocated structs.Resources `json:"allocated"`
	// Allocs is how many live allocations the node runs.
	Allocs int `json:"allocs"`
}

// UINodes is GET /v1/ui/nodes.
type UINodes struct {
	Nodes []*uiNodeRow `json:"nodes"`
	// Capacity and Allocated add up the ready nodes.
	Capacity  structs.Resources `json:"capacity"`
	Allocated structs.Resources `json:"allocated"`
	Index     uint64            `json:"index"`
}

// uiPipelineFilter is the query of GET /v1/ui/pipelines.
type uiPipelineFilter struct {
	states  map[string]bool // empty: any
	name    string          // lower-case substring of name or ID prefix
	perPage int
	next    uint64 // only pipelines with CreateIndex <= next; 0: from the newest
}

func parseUIPipelineFilter(r *http.Request) (*uiPipelineFilter, error) {
	q := r.URL.Query()
	f := &uiPipelineFilter{states: map[string]bool{}, perPage: uiDefaultPerPage, name: strings.ToLower(strings.TrimSpace(q.Get("name")))}
	for _, v := range q["state"] {
		for _, s := range strings.Split(v, ",") {
			s = strings.ToUpper(strings.TrimSpace(s))
			if s == "" {
				continue
			}
			switch structs.PipelineState(s) {
			case structs.PipelinePending, structs.PipelineRunning, structs.PipelineSucceeded, structs.PipelineFailed, structs.PipelineCancelled:
			default:
				return nil, BadRequest("invalid state %q: want PENDING, RUNNING, SUCCEEDED, FAILED or CANCELLED", s)
			}
			f.states[s] = true
		}
	}
	if v := q.Get("per_page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > uiMaxPerPage {
			return nil, BadRequest("invalid per_page %q: want 1 to %d", v, uiMaxPerPage)
		}
		f.perPage = n
	}
	if v := q.Get("next_token"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return nil, BadRequest("invalid next_token %q: pass the next_token of the previous page", v)
		}
		f.next = n
	}
	return f, nil
}

func (f *uiPipelineFilter) nameMatch(p *structs.Pipeline) bool {
	return f.name == "" || containsFold(p.Name, f.name) || strings.HasPrefix(p.ID, f.name)
}

// containsFold reports whether lower (already lower-case) occurs in s,
// ignoring ASCII case, without allocating.
func containsFold(s, lower string) bool {
	n := len(lower)
	for i := 0; i+n <= len(s); i++ {
		j := 0
		for ; j < n; j++ {
			c := s[i+j]
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			if c != lower[j] {
				break
			}
		}
		if j == n {
			return true
		}
	}
	return false
}

// uiPipelines reads one page. Rows are filtered on the pipeline records
// alone (cheap for 10,000 pipelines, no allocation per row); job counts are
// read for the page only.
func uiPipelines(ws memdb.WatchSet, st *state.StateStore, f *uiPipelineFilter) (*UIPipelinePage, error) {
	// Any job change changes some row's counts.
	st.IndexWatch(ws, state.TableJobs)
	page := &UIPipelinePage{Pipelines: make([]*pipelineRow, 0, f.perPage), StateCounts: map[string]int{}}
	// counts by pipelineStates position: no map write per row.
	var counts [8]int
	// Newest first.
	err := st.EachPipeline(ws, func(p *structs.Pipeline) bool {
		if !f.nameMatch(p) {
			return true
		}
		counts[stateSlot(p.State)]++
		if len(f.states) > 0 && !f.states[string(p.State)] {
			return true
		}
		page.Total++
		if f.next > 0 && p.CreateIndex > f.next {
			return true
		}
		if len(page.Pipelines) == f.perPage {
			if page.NextToken == "" {
				page.NextToken = strconv.FormatUint(p.CreateIndex, 10)
			}
			return true
		}
		page.Pipelines = append(page.Pipelines, newPipelineRow(st, p))
		return true
	})
	if err != nil {
		return nil, err
	}
	for i, n := range counts {
		if n > 0 {
			page.StateCounts[string(pipelineStates[i])] = n
		}
	}
	page.Index = max(st.Index(state.TablePipelines), st.Index(state.TableJobs))
	return page, nil
}

// pipelineStates are the states StateCounts counts; the last slot holds
// anything else.
var pipelineStates = []structs.PipelineState{structs.PipelinePending, structs.PipelineRunning,
	structs.PipelineSucceeded, structs.PipelineFailed, structs.PipelineCancelled, "UNKNOWN"}

func stateSlot(s structs.PipelineState) int {
	for i, k := range pipelineStates[:len(pipelineStates)-1] {
		if k == s {
			return i
		}
	}
	return len(pipelineStates) - 1
}

func (a *API) handleUIPipelines(w http.ResponseWriter, r *http.Request) (any, error) {
	q, err := ParseQuery(r)
	if err != nil {
		return nil, err
	}
	f, err := parseUIPipelineFilter(r)
	if err != nil {
		return nil, err
	}
	var out *UIPipelinePage
	idx, err := a.b.State().BlockingQuery(r.Context(), q.Index, q.Wait, func(ws memdb.WatchSet, st *state.StateStore) (uint64, error) {
		var err error
		out, err = uiPipelines(ws, st, f)
		if err != nil {
			return 0, err
		}
		return out.Index, nil
	})
	if err != nil {
		return nil, err
	}
	SetIndex(w, idx)
	return out, nil
}

func uiNodeList(ws memdb.WatchSet, st *state.StateStore) (*UINodes, error) {
	nodes, err := st.Nodes(ws)
	if err != nil {
		return nil, err
	}
	st.IndexWatch(ws, state.TableAllocs)
	out := &UINodes{Nodes: make([]*uiNodeRow, 0, len(nodes))}
	for _, n := range nodes {
		row, err := uiNodeOf(st, n)
		if err != nil {
			return nil, err
		}
		if n.Status == structs.NodeStatusReady {
			out.Capacity = out.Capacity.Add(n.Capacity())
			out.Allocated = out.Allocated.Add(row.Allocated)
		}
		out.Nodes = append(out.Nodes, row)
	}
	out.Index = max(st.Index(state.TableNodes), st.Index(state.TableAllocs))
	return out, nil
}

func uiNodeOf(st *state.StateStore, n *structs.Node) (*uiNodeRow, error) {
	allocs, err := st.AllocsByNode(nil, n.ID)
	if err != nil {
		return nil, err
	}
	row := &uiNodeRow{Node: n}
	for _, a := range allocs {
		if a.Live() {
			row.Allocated = row.Allocated.Add(a.Resources)
			row.Allocs++
		}
	}
	return row, nil
}

func (a *API) handleUINodes(w http.ResponseWriter, r *http.Request) (any, error) {
	q, err := ParseQuery(r)
	if err != nil {
		return nil, err
	}
	var out *UINodes
	idx, err := a.b.State().BlockingQuery(r.Context(), q.Index, q.Wait, func(ws memdb.WatchSet, st *state.StateStore) (uint64, error) {
		var err error
		out, err = uiNodeList(ws, st)
		if err != nil {
			return 0, err
		}
		return out.Index, nil
	})
	if err != nil {
		return nil, err
	}
	SetIndex(w, idx)
	return out, nil
}
