package server

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ciplat/ciplat/fsm/state"
	"github.com/ciplat/ciplat/fsm/structs"
	"github.com/ciplat/ciplat/server/httpapi"
)

// seedPipelines writes n pipelines of two jobs straight into a state store,
// states cycling through PENDING, RUNNING, SUCCEEDED, FAILED.
func seedPipelines(t testing.TB, st *state.StateStore, base uint64, n int) {
	t.Helper()
	states := []structs.PipelineState{structs.PipelinePending, structs.PipelineRunning, structs.PipelineSucceeded, structs.PipelineFailed}
	jobStates := map[structs.PipelineState][]structs.JobState{
		structs.PipelinePending:   {structs.JobPending, structs.JobPending},
		structs.PipelineRunning:   {structs.JobSucceeded, structs.JobRunning},
		structs.PipelineSucceeded: {structs.JobSucceeded, structs.JobSucceeded},
		structs.PipelineFailed:    {structs.JobSucceeded, structs.JobFailed},
	}
	for i := 0; i < n; i++ {
		ps := states[i%len(states)]
		id := fmt.Sprintf("p%05d", i)
		name := "web"
		if i%3 == 0 {
			name = "api"
		}
		p := &structs.Pipeline{ID: id, Name: fmt.Sprintf("%s-%d", name, i), State: ps,
			JobIDs: []string{id + "-a", id + "-b"}, SubmittedAt: time.Unix(int64(i), 0).UTC()}
		err := st.Write(base+uint64(i), func(tx *state.WriteTxn) error {
			if err := tx.UpsertPipeline(p); err != nil {
				return err
			}
			for k, js := range jobStates[ps] {
				if err := tx.UpsertJob(&structs.Job{ID: p.JobIDs[k], PipelineID: id, Name: fmt.Sprint(k), State: js, Attempt: 1}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

func TestUIPipelines_FilterAndPages(t *testing.T) {
	ts := newLiveServer(t, nil)
	seedPipelines(t, ts.srv.State(), 1000, 120)

	var page httpapi.UIPipelinePage
	resp := ts.do("GET", "/v1/ui/pipelines?per_page=25", nil, nil, &page)
	if resp.StatusCode != 200 || page.Total != 120 || len(page.Pipelines) != 25 || page.NextToken == "" {
		t.Fatalf("first page: HTTP %d total %d rows %d next %q", resp.StatusCode, page.Total, len(page.Pipelines), page.NextToken)
	}
	if page.Pipelines[0].ID != "p00119" || page.StateCounts["RUNNING"] != 30 {
		t.Fatalf("first row %s, counts %v: want newest first and 30 running", page.Pipelines[0].ID, page.StateCounts)
	}
	if got := page.Pipelines[0].JobStates; got["FAILED"] != 1 || got["SUCCEEDED"] != 1 {
		t.Fatalf("job states of p00119 (FAILED) = %v", got)
	}
	// Walk every page: each pipeline once, newest first.
	seen := map[string]bool{}
	last := "p99999"
	next := ""
	for pages := 0; ; pages++ {
		var pg httpapi.UIPipelinePage
		ts.do("GET", "/v1/ui/pipelines?per_page=25&next_token="+next, nil, nil, &pg)
		for _, r := range pg.Pipelines {
			if seen[r.ID] || r.ID >= last {
				t.Fatalf("page %d: %s repeated or out of order (after %s)", pages, r.ID, last)
			}
			seen[r.ID], last = true, r.ID
		}
		if next = pg.NextToken; next == "" {
			break
		}
	}
	if len(seen) != 120 {
		t.Fatalf("pages held %d pipelines, want 120", len(seen))
	}

	// Filters: state (repeatable, any case) and name substring.
	ts.do("GET", "/v1/ui/pipelines?state=running,failed&name=API", nil, nil, &page)
	for _, r := range page.Pipelines {
		if (r.State != "RUNNING" && r.State != "FAILED") || !strings.HasPrefix(r.Name, "api-") {
			t.Fatalf("filter let through %s %s", r.Name, r.State)
		}
	}
	if page.Total != 20 || page.StateCounts["SUCCEEDED"] != 10 {
		t.Fatalf("api running|failed: total %d counts %v; want 20 and the name filter's counts", page.Total, page.StateCounts)
	}
	for _, q := range []string{"state=DONE", "per_page=0", "per_page=9999", "next_token=x"} {
		if r := ts.do("GET", "/v1/ui/pipelines?"+q, nil, nil, nil); r.StatusCode != http.StatusBadRequest {
			t.Errorf("?%s = HTTP %d, want 400", q, r.StatusCode)
		}
	}
}

func TestUINodes_Allocated(t *testing.T) {
	ts := newLiveServer(t, nil)
	registerNode(ts, "n1")
	registerNode(ts, "n2")
	submit(ts, twoJobs, nil)
	var nodes httpapi.UINodes
	waitFor(t, "job a placed", func() bool {
		ts.do("GET", "/v1/ui/nodes", nil, nil, &nodes)
		return nodes.Nodes[0].Allocs+nodes.Nodes[1].Allocs == 1
	})
	if len(nodes.Nodes) != 2 || nodes.Capacity.CPU != 8000 || nodes.Allocated.CPU == 0 {
		t.Fatalf("ui/nodes = %+v", nodes)
	}
}
