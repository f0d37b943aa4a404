package workerset

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ciplat/ciplat/drivers"
)

// closed reports whether c is closed, without waiting.
func closed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// TestSet_Destroy: a destroy kills the steps in flight, no step starts in
// the tombstone, Wait returns once every step finished, and Forget lets
// the ID be used again.
func TestSet_Destroy(t *testing.T) {
	var s Set[string]
	if !s.Add("w", "meta") || s.Add("w", "again") {
		t.Fatal("Add: want true, then false for a live worker")
	}
	meta, st, ok := s.Start("w")
	if !ok || meta != "meta" || closed(st.Killed()) {
		t.Fatalf("Start = %q, %v; want the meta and a live step", meta, ok)
	}
	tomb := s.Destroy("w")
	if !tomb.WasLive() || tomb.Steps() != 1 || !closed(st.Killed()) {
		t.Fatalf("Destroy: live %v, steps %d, killed %v; want true, 1, true", tomb.WasLive(), tomb.Steps(), closed(st.Killed()))
	}
	if _, _, ok := s.Start("w"); ok {
		t.Error("a step started in a worker being destroyed")
	}
	if _, ok := s.StartTracked("w"); ok {
		t.Error("a tracked step started in a worker being destroyed")
	}
	if _, ok := s.Get("w"); ok || !s.Known("w") || len(s.Live()) != 0 {
		t.Error("a tombstone is not live but known")
	}
	if s.Destroy("w").WasLive() {
		t.Error("a second destroy says the worker was live")
	}

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Millisecond)
	defer cancel()
	if err := tomb.Wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Wait with a step running = %v, want the ctx's error", err)
	}
	st.Finish()
	if err := tomb.Wait(t.Context()); err != nil {
		t.Errorf("Wait after Finish = %v", err)
	}
	tomb.Forget()
	if s.Known("w") {
		t.Error("Forget left the tombstone")
	}
	if !s.Add("w", "new") {
		t.Error("Add after the destroy: want true")
	}
}

// TestSet_Add_replacesTombstone: a worker added again while its old one is
// destroyed is a new worker; the old destroy's Forget leaves it alone.
func TestSet_Add_replacesTombstone(t *testing.T) {
	var s Set[int]
	s.Add("w", 1)
	tomb := s.Destroy("w")
	if s.Load("w", 2) {
		t.Error("Load over a tombstone: want false")
	}
	if !s.Add("w", 3) {
		t.Fatal("Add over a tombstone: want true")
	}
	tomb.Forget()
	if m, ok := s.Get("w"); !ok || m != 3 {
		t.Errorf("Get = %d, %v; want the new worker", m, ok)
	}
	s.Put("w", 4)
	if m, _ := s.Get("w"); m != 4 {
		t.Errorf("Put did not replace: %d", m)
	}
}

// TestSet_StartTracked: a worker the Set does not have is tracked while
// steps run in it and forgotten after the last; an added one is kept.
func TestSet_StartTracked(t *testing.T) {
	var s Set[struct{}]
	a, ok1 := s.StartTracked("w")
	b, ok2 := s.StartTracked("w")
	if !ok1 || !ok2 || !s.Known("w") {
		t.Fatal("StartTracked did not track the worker")
	}
	if _, _, ok := s.Start("x"); ok {
		t.Error("Start in an unknown worker: want false")
	}
	a.Finish()
	if !s.Known("w") {
		t.Error("forgotten with a step still running")
	}
	b.Finish()
	if s.Known("w") {
		t.Error("still tracked after its last step")
	}

	s.Add("kept", struct{}{})
	st, _ := s.StartTracked("kept")
	st.Finish()
	if _, ok := s.Get("kept"); !ok {
		t.Error("an added worker was forgotten after its step")
	}

	// A destroy's tombstone outlives the steps it interrupted.
	st, _ = s.StartTracked("d")
	tomb := s.Destroy("d")
	if tomb.WasLive() {
		t.Error("a tracked worker counts as added")
	}
	st.Finish()
	if !s.Known("d") {
		t.Error("the tombstone went with the last step")
	}
	tomb.Forget()
	if s.Known("d") {
		t.Error("Forget left the tombstone")
	}
}

// TestSet_Destroy_unknown: destroying a worker the Set never had (one an
// earlier agent created) leaves a tombstone that blocks steps until Forget.
func TestSet_Destroy_unknown(t *testing.T) {
	var s Set[struct{}]
	tomb := s.Destroy("old")
	if tomb.WasLive() || tomb.Steps() != 0 {
		t.Errorf("unknown worker: live %v, steps %d", tomb.WasLive(), tomb.Steps())
	}
	if _, ok := s.StartTracked("old"); ok {
		t.Error("a step started in a worker being destroyed")
	}
	tomb.Forget()
	if _, ok := s.StartTracked("old"); !ok {
		t.Error("no step starts after Forget")
	}
}

func TestCloneHandle(t *testing.T) {
	h := &drivers.WorkerHandle{ID: "w", State: map[string]string{"k": "v"}}
	c := CloneHandle(h)
	c.State["k"] = "changed"
	if h.State["k"] != "v" {
		t.Error("the clone shares State")
	}
	if CloneHandle(&drivers.WorkerHandle{ID: "x"}).State != nil {
		t.Error("nil State became non-nil")
	}
	hs := []*drivers.WorkerHandle{{ID: "b"}, {ID: "a"}}
	SortHandles(hs)
	if hs[0].ID != "a" {
		t.Errorf("SortHandles: %s first", hs[0].ID)
	}
}
