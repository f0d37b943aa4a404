package server

import (
	"io"
	"testing"
)

// TestServer_SnapshotAllocsByPipeline: the allocations the real workers
// commit carry their pipeline, so the snapshot's AllocsByPipeline (which the
// scheduler's spread and anti-affinity read) finds them all.
func TestServer_SnapshotAllocsByPipeline(t *testing.T) {
	ts := newSchedServer(t, "", nil)
	addNode(ts, "n1", 4000, 4096)
	addNode(ts, "n2", 4000, 4096)
	spec := `name: apart
jobs:
  a: {anti_affinity: true, spread: [{attr: label.zone}], resources: {cpu: 500, memory: 256}, steps: ['true']}
  b: {anti_affinity: true, resources: {cpu: 500, memory: 256}, steps: ['true']}
`
	var p struct {
		ID   string     `json:"id"`
		Jobs []*jobJSON `json:"jobs"`
	}
	resp := ts.do("POST", "/v1/pipelines", []byte(spec), nil, &p)
	if resp.StatusCode != 201 || len(p.Jobs) != 2 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("submit: HTTP %d %s", resp.StatusCode, b)
	}
	for _, j := range p.Jobs {
		got := waitJob(ts, j.ID, "scheduled", func(j *jobJSON) bool { return j.AllocID != "" })
		if !got.Spec.AntiAffinity {
			t.Fatalf("job %s lost anti_affinity on the way: %+v", j.Name, got.Spec)
		}
	}
	snap, err := ts.srv.State().Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	allocs, err := snap.AllocsByPipeline(p.Jobs[0].PipelineID)
	if err != nil || len(allocs) != 2 {
		t.Fatalf("AllocsByPipeline = %d allocations, %v; want 2", len(allocs), err)
	}
}
