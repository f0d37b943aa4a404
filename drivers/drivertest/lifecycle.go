package drivertest

import (
	"encoding/json"
	"testing"

	"github.com/ciplat/ciplat/drivers"
)

// testFingerprint: the driver is detected and healthy on the test host.
func testFingerprint(t *testing.T, s *suite) {
	d := s.newDriver(t)
	if d.Name() == "" {
		t.Error("Name() is empty")
	}
	fp := d.Fingerprint(s.ctx(t))
	if !fp.Detected || !fp.Healthy {
		t.Fatalf("Fingerprint = detected %v, healthy %v (%q); want both true on a host that can run the suite", fp.Detected, fp.Healthy, fp.Reason)
	}
	t.Logf("%s %s %v", d.Name(), fp.Version, fp.Attributes)
}

// testLifecycle: create → steps in order → destroy, and a destroyed worker
// is gone for every method.
func testLifecycle(t *testing.T, s *suite) {
	d := s.newDriver(t)
	h := s.newWorker(t, d, nil)
	if err := d.RecoverWorker(s.ctx(t), h); err != nil {
		t.Fatalf("RecoverWorker on a live worker: %v", err)
	}
	for _, name := range []string{"step-1", "step-2", "step-3"} {
		rec := s.mustRun(t, d, h, drivers.StepConfig{Name: name, Run: s.lang.Echo(drivers.Stdout, name)})
		wantTexts(t, rec, drivers.Stdout, name)
		if rec.Late() > 0 {
			t.Errorf("step %s: %d lines emitted after RunStep returned", name, rec.Late())
		}
	}
	if err := d.DestroyWorker(s.ctx(t), h); err != nil {
		t.Fatalf("DestroyWorker: %v", err)
	}
	wantNotFound(t, "RecoverWorker after DestroyWorker", d.RecoverWorker(s.ctx(t), h))
	_, _, err := run(s.ctx(t), d, h, drivers.StepConfig{Name: "late", Run: s.lang.Echo(drivers.Stdout, "late")})
	wantNotFound(t, "RunStep after DestroyWorker", err)
	if s.listed(t, d, h.ID) {
		t.Errorf("ListWorkers still lists %s after DestroyWorker", h.ID)
	}
}

// testDestroyIdempotent: destroying twice, or a worker that never existed,
// returns nil.
func testDestroyIdempotent(t *testing.T, s *suite) {
	d := s.newDriver(t)
	h := s.newWorker(t, d, nil)
	for i := range 2 {
		if err := d.DestroyWorker(s.ctx(t), h); err != nil {
			t.Fatalf("DestroyWorker #%d: %v", i+1, err)
		}
	}
	ghost := &drivers.WorkerHandle{ID: newID(), Driver: d.Name()}
	if err := d.DestroyWorker(s.ctx(t), ghost); err != nil {
		t.Errorf("DestroyWorker of a worker that never existed: %v", err)
	}
	wantNotFound(t, "RecoverWorker of a worker that never existed", d.RecoverWorker(s.ctx(t), ghost))
}

// testListWorkers: created workers are listed until destroyed.
func testListWorkers(t *testing.T, s *suite) {
	d := s.newDriver(t)
	a := s.newWorker(t, d, nil)
	b := s.newWorker(t, d, nil)
	for _, h := range []*drivers.WorkerHandle{a, b} {
		if !s.listed(t, d, h.ID) {
			t.Errorf("ListWorkers does not list %s", h.ID)
		}
	}
	if err := d.DestroyWorker(s.ctx(t), a); err != nil {
		t.Fatalf("DestroyWorker: %v", err)
	}
	if s.listed(t, d, a.ID) {
		t.Errorf("ListWorkers lists %s after DestroyWorker", a.ID)
	}
	if !s.listed(t, d, b.ID) {
		t.Errorf("ListWorkers lost %s when %s was destroyed", b.ID, a.ID)
	}
}

// testRecoverAfterRestart: a new driver value over the same state (a
// restarted agent) recovers a worker from its persisted handle, runs steps
// in it with the worker's env and workspace, lists and destroys it.
func testRecoverAfterRestart(t *testing.T, s *suite) {
	before := s.newDriver(t)
	h := s.newWorker(t, before, map[string]string{"DT_KEPT": "kept"})
	s.mustRun(t, before, h, drivers.StepConfig{Name: "write", Run: s.lang.WriteFile("kept.txt", "written-before-restart")})

	// The client persists the handle and reads it back after the restart.
	b, err := json.Marshal(h)
	if err != nil {
		t.Fatalf("marshal handle: %v", err)
	}
	var persisted drivers.WorkerHandle
	if err := json.Unmarshal(b, &persisted); err != nil {
		t.Fatalf("unmarshal handle: %v", err)
	}

	after := s.newDriver(t)
	if err := after.RecoverWorker(s.ctx(t), &persisted); err != nil {
		t.Fatalf("RecoverWorker after restart: %v", err)
	}
	if !s.listed(t, after, h.ID) {
		t.Errorf("ListWorkers after restart does not list %s", h.ID)
	}
	rec := s.mustRun(t, after, &persisted, drivers.StepConfig{Name: "read", Run: script(
		s.lang.ReadFile("kept.txt"),
		s.lang.PrintEnv("DT_KEPT"),
	)})
	wantTexts(t, rec, drivers.Stdout, "written-before-restart", "DT_KEPT=kept")

	if err := after.DestroyWorker(s.ctx(t), &persisted); err != nil {
		t.Fatalf("DestroyWorker after restart: %v", err)
	}
	wantNotFound(t, "RecoverWorker after destroy (new driver)", after.RecoverWorker(s.ctx(t), &persisted))
	wantNotFound(t, "RecoverWorker after destroy (old driver)", before.RecoverWorker(s.ctx(t), h))
}
