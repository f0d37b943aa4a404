package fsm

import (
	"strings"
	"testing"

	"github.com/ciplat/ciplat/fsm/structs"
)

// TestFSM_RefusalsDoNotEchoHugeValues: an entry refused for a 100 KB
// client-supplied value gets an error of a few hundred bytes, not the
// value (it goes to the HTTP caller and every server's log).
func TestFSM_RefusalsDoNotEchoHugeValues(t *testing.T) {
	h := newHarness(t)
	h.addNode("n1")
	p, jobs := newPipeline("p1", jobSpec("build"))
	h.register(p, jobs)
	a := h.place("p1-build", "n1")
	huge := strings.Repeat("x", 100<<10)
	update := func(u *structs.AllocUpdate) any {
		return h.apply(structs.AllocClientUpdateRequestType, &structs.AllocClientUpdateRequest{WriteRequest: h.wr(),
			Updates: []*structs.AllocUpdate{u}})
	}
	cases := map[string]any{
		"client_status": update(&structs.AllocUpdate{AllocID: a, ClientStatus: huge}),
		"job_state":     update(&structs.AllocUpdate{AllocID: a, JobState: structs.JobState(huge)}),
		"cause":         update(&structs.AllocUpdate{AllocID: a, ClientStatus: structs.AllocClientFailed, JobState: structs.JobFailed, Cause: huge}),
		"cause on a non-failed report": update(&structs.AllocUpdate{AllocID: a, ClientStatus: structs.AllocClientRunning,
			JobState: structs.JobState(huge), Cause: structs.CauseWorkerLost}),
		"node status": h.apply(structs.NodeStatusUpdateRequestType, &structs.NodeStatusUpdateRequest{WriteRequest: h.wr(),
			NodeID: "n1", Status: huge}),
		"driver name": h.apply(structs.NodeRegisterRequestType, &structs.NodeRegisterRequest{WriteRequest: h.wr(),
			Node: &structs.Node{ID: "n2", Status: structs.NodeStatusReady, Drivers: map[string]*structs.DriverInfo{huge: nil}}}),
	}
	for name, resp := range cases {
		err := errOf(resp)
		if err == nil {
			t.Errorf("%s: %v, want refused", name, resp)
			continue
		}
		if n := len(err.Error()); n >= 300 || !strings.Contains(err.Error(), "(102400 bytes)") {
			t.Errorf("%s: error of %d bytes (want < 300, naming the value's size): %.200s", name, n, err)
		}
	}
}
