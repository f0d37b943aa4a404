package command

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/ciplat/ciplat/api"
)

func TestPipelineList(t *testing.T) {
	f := newFakeAgent(t)
	now := time.Now()
	f.stubs = []*api.PipelineStub{
		{ID: pipeID, Name: "ci", State: api.StateSucceeded, Jobs: 3,
			JobStates: map[string]int{api.StateSucceeded: 3}, SubmittedAt: now.Add(-2*time.Minute - time.Second)},
		{ID: "77aa88bb-0000-4000-8000-000000000000", Name: "release", State: api.StateFailed, Jobs: 3,
			JobStates:   map[string]int{api.StateSucceeded: 1, api.StateFailed: 1, api.StateCancelled: 1},
			SubmittedAt: now.Add(-3 * time.Hour)},
	}

	r := runMain(t, "pipeline", "list", "-address", f.addr())

	r.check(t, exitOK, []string{
		"ID        NAME     STATE      JOBS                                  SUBMITTED\n",
		"3f2a9c1d  ci       SUCCEEDED  3/3 succeeded                         2m ago\n",
		"77aa88bb  release  FAILED     1/3 succeeded, 1 failed, 1 cancelled  3h ago\n",
	}, nil)

	r = runMain(t, "pipeline", "list", "-json", "-address", f.addr())
	var got []*api.PipelineStub
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || len(got) != 2 || got[0].ID != pipeID {
		t.Errorf("-json printed %q (%v)", r.stdout, err)
	}

	f.stubs = nil
	r = runMain(t, "pipeline", "list", "-address", f.addr())
	r.check(t, exitOK, []string{"No pipelines\n"}, nil)
}

func TestPipelineStatus(t *testing.T) {
	f := newFakeAgent(t)
	pending := testJob(testID, "test", api.StatePending, 1, 0, 0, "")
	pending.Explain = "2 nodes lacked memory, 1 node had driver docker unhealthy"
	f.snapshots = []*api.Pipeline{testPipeline(api.StateRunning,
		testJob(buildID, "build", api.StateSucceeded, 1, 1, 2, ""), pending)}
	ui, _, _, _ := testUI("", t0.Add(90*time.Second))

	r := runUI(t, ui, "pipeline", "status", "-address", f.addr(), "3f2a") // a prefix

	r.check(t, exitOK, []string{
		"ID        = " + pipeID + "\n",
		"Name      = ci\n",
		"State     = RUNNING\n",
		"Submitted = ", "(1m ago)",
		"Duration  = 1m30s\n",
		"JOB ID    NAME   STATE      ATTEMPT  NODE      DURATION  REASON\n",
		"0c1d2e3f  build  SUCCEEDED  1        9a8b7c6d  1s        -\n",
		"1d2e3f4a  test   PENDING    1        -         -         -\n",
		`Job "test" (1d2e3f4a) is pending:` + "\n  2 nodes lacked memory, 1 node had driver docker unhealthy\n",
	}, nil)

	r = runMain(t, "pipeline", "status", "-address", f.addr(), "3f2a", "-json") // flag after the ID
	var got api.Pipeline
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || got.ID != pipeID || len(got.Jobs) != 2 {
		t.Errorf("-json printed %q (%v)", r.stdout, err)
	}

	r = runMain(t, "pipeline", "status", "-address", f.addr(), "ffff")
	r.check(t, exitFailure, nil, []string{`Error: read pipeline "ffff": pipeline ffff not found (HTTP 404)` + "\n"})
}

func TestPipelineCancel(t *testing.T) {
	f := newFakeAgent(t)
	f.snapshots = []*api.Pipeline{testPipeline(api.StateRunning, testJob(buildID, "build", api.StateRunning, 1, 1, 0, ""))}

	r := runMain(t, "pipeline", "cancel", "-address", f.addr(), "3f2a")
	r.check(t, exitOK, []string{"==> Pipeline " + pipeID + " cancelled\n"}, nil)

	f.cancelCode, f.cancelMsg = 409, "pipeline "+pipeID+" already ended: SUCCEEDED"
	r = runMain(t, "pipeline", "cancel", "-address", f.addr(), "3f2a")
	r.check(t, exitFailure, nil, []string{`Error: cancel pipeline "3f2a": pipeline ` + pipeID + " already ended: SUCCEEDED (HTTP 409)\n"})
	if strings.Count(r.stderr, "\n") != 1 || r.stdout != "" {
		t.Errorf("a refused cancel printed more than one error line:\nstdout: %s\nstderr: %s", r.stdout, r.stderr)
	}
}
