package server

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/ciplat/ciplat/fsm/structs"
)

// TestServer_ImageNeedsContainerDriver: a job with an image on a cluster
// whose nodes run exec alone stays PENDING, explained as "no node has a
// container driver for image …" (issue 12: it ran on the host and
// SUCCEEDED); the same job with driver: exec is placed.
func TestServer_ImageNeedsContainerDriver(t *testing.T) {
	ts := newSchedServer(t, "", nil)
	addNode(ts, "n1", 4000, 4096) // exec and mock, no container driver
	var p struct {
		Jobs []*jobJSON `json:"jobs"`
	}
	body := "name: img\nimage: no/such-image:1\nsteps: [ 'true' ]\n"
	if resp := ts.do("POST", "/v1/jobs", []byte(body), nil, &p); resp.StatusCode != 201 {
		t.Fatalf("submit: HTTP %d", resp.StatusCode)
	}
	want := "no node has a container driver for image no/such-image:1"
	j := waitJob(ts, p.Jobs[0].ID, "explained", func(j *jobJSON) bool { return strings.HasPrefix(j.Explain, want) })
	if j.State != structs.JobPending {
		t.Fatalf("state %s, want PENDING", j.State)
	}
	imageJob := j.ID

	body = "name: img-exec\nimage: no/such-image:1\ndriver: exec\nsteps: [ 'true' ]\n"
	if resp := ts.do("POST", "/v1/jobs", []byte(body), nil, &p); resp.StatusCode != 201 {
		t.Fatalf("submit: HTTP %d", resp.StatusCode)
	}
	waitJob(ts, p.Jobs[0].ID, "scheduled", isState(structs.JobScheduled))

	// A node with a healthy docker joins: the waiting job is placed there.
	n := structs.Node{ID: "n2", Name: "n2", Resources: structs.Resources{CPU: 4000, MemoryMB: 4096},
		Drivers: map[string]*structs.DriverInfo{"docker": {Detected: true, Healthy: true}}}
	b, _ := json.Marshal(n)
	if resp := ts.do("POST", "/v1/client/nodes", b, nil, nil); resp.StatusCode != 200 {
		t.Fatalf("register n2: HTTP %d", resp.StatusCode)
	}
	j = waitJob(ts, imageJob, "scheduled", isState(structs.JobScheduled))
	if j.NodeID != "n2" {
		t.Errorf("placed on %q, want n2 (the docker node)", j.NodeID)
	}
}
