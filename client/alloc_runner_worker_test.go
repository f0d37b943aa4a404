package client

import (
	"context"
	"errors"
	"testing"

	"github.com/ciplat/ciplat/api"
	"github.com/ciplat/ciplat/drivers"
	"github.com/ciplat/ciplat/drivers/mock"
)

// TestClient_Run_ReportsWorker checks the Worker Manager API's fields: the
// driver, the worker's ID and state on the RUNNING report and on the end.
func TestClient_Run_ReportsWorker(t *testing.T) {
	srv := newFakeServer(t)
	h := startClient(t, srv, "", map[string]drivers.Driver{"mock": mock.New(mock.Config{})})
	a := testAlloc(h.c.NodeID(), "a1", "mock", api.StepSpec{Name: "s", Run: "echo hi"})
	a.Job.Spec.Image = "busybox:test"
	srv.addAlloc(a)
	final := srv.waitFinal(t, "a1")
	ups := srv.updates("a1")
	first := ups[0]
	if first.ClientStatus != api.AllocClientRunning || first.Driver != "mock" || first.WorkerID == "" ||
		first.WorkerState != api.WorkerRunning || first.Image != "busybox:test" {
		t.Fatalf("first report %+v: want running with driver mock, a worker ID, state running and the image", first)
	}
	if final.WorkerState != api.WorkerTerminated || final.WorkerID != first.WorkerID || final.Driver != "mock" {
		t.Fatalf("final report %+v: want worker %s terminated", final, first.WorkerID)
	}
}

func TestClient_Run_ReportsWorkerStoppedTerminated(t *testing.T) {
	srv := newFakeServer(t)
	h := startClient(t, srv, "", map[string]drivers.Driver{"mock": mock.New(mock.Config{})})
	srv.addAlloc(testAlloc(h.c.NodeID(), "a1", "", api.StepSpec{Name: "wait", Run: "echo waiting\nsleep 1h"}))
	srv.waitLogs(t, 1)
	srv.setAlloc("a1", func(a *api.Allocation) { a.DesiredStatus = api.AllocDesiredStop })
	final := srv.waitFinal(t, "a1")
	if final.ClientStatus != api.AllocClientComplete || final.WorkerState != api.WorkerTerminated || final.Driver != "mock" || final.WorkerID == "" {
		t.Fatalf("final %+v: want complete with the worker terminated", final)
	}
}

type failCreate struct{ *mock.Driver }

func (failCreate) CreateWorker(context.Context, drivers.WorkerConfig) (*drivers.WorkerHandle, error) {
	return nil, errors.New("no such image")
}

func TestClient_Run_ReportsWorkerCreateFailed(t *testing.T) {
	srv := newFakeServer(t)
	h := startClient(t, srv, "", map[string]drivers.Driver{"mock": failCreate{mock.New(mock.Config{})}})
	srv.addAlloc(testAlloc(h.c.NodeID(), "a1", "mock", api.StepSpec{Name: "s", Run: "echo hi"}))
	final := srv.waitFinal(t, "a1")
	if final.ClientStatus != api.AllocClientFailed || final.WorkerState != api.WorkerFailed || final.Driver != "mock" ||
		final.Reason != "driver: create worker: no such image" || final.Cause != api.CauseCreateFailed {
		t.Fatalf("final %+v: want failed with the worker failed and the reason", final)
	}
	if ups := srv.updates("a1"); ups[0].WorkerState == api.WorkerRunning {
		t.Fatalf("RUNNING report says the worker runs: %+v", ups[0])
	}
}
