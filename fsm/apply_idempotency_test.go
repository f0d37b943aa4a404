package fsm

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ciplat/ciplat/fsm/state"
	"github.com/ciplat/ciplat/fsm/structs"
)

// registerKeyed applies a register entry for pipeline id with an
// Idempotency-Key, the spec's body hash and an expiry; it returns Apply's
// response (a *PipelineRegisterResponse or an error).
func (h *harness) registerKeyed(id, key, hash string, expires time.Time) any {
	h.t.Helper()
	p, jobs := newPipeline(id, jobSpec("build"))
	return h.apply(structs.PipelineRegisterRequestType, &structs.PipelineRegisterRequest{
		WriteRequest: h.wr(), Pipeline: p, Jobs: jobs,
		IdempotencyKey: key, BodyHash: hash, IdempotencyExpiresAt: expires,
	})
}

func registered(t *testing.T, resp any) *structs.PipelineRegisterResponse {
	t.Helper()
	r, ok := resp.(*structs.PipelineRegisterResponse)
	if !ok {
		t.Fatalf("register = %v, want a response", resp)
	}
	return r
}

func TestFSM_PipelineRegister_IdempotencyKey(t *testing.T) {
	h := newHarness(t)
	expires := t0.Add(24 * time.Hour)
	if r := registered(t, h.registerKeyed("p1", "build-42", "sha256:aa", expires)); r.PipelineID != "p1" || r.Existing {
		t.Fatalf("first submit = %+v, want new p1", r)
	}
	rec, _ := h.f.State().IdempotencyKey(nil, "", "build-42")
	want := structs.IdempotencyKey{Key: "build-42", BodyHash: "sha256:aa", PipelineID: "p1", ExpiresAt: expires, CreateIndex: 1, ModifyIndex: 1}
	if rec == nil || *rec != want {
		t.Fatalf("key record = %+v, want %+v", rec, want)
	}
	before := persisted(t, h.f)

	t.Run("same key same body", func(t *testing.T) {
		r := registered(t, h.registerKeyed("p2", "build-42", "sha256:aa", expires))
		if r.PipelineID != "p1" || !r.Existing {
			t.Fatalf("retry = %+v, want existing p1", r)
		}
		if !bytes.Equal(persisted(t, h.f), before) {
			t.Fatalf("a retry changed the state")
		}
	})
	t.Run("same key different body", func(t *testing.T) {
		err := errOf(h.registerKeyed("p3", "build-42", "sha256:bb", expires))
		var ce *structs.IdempotencyConflictError
		if !errors.As(err, &ce) || !errors.Is(err, structs.ErrConflict) {
			t.Fatalf("register = %v, want an IdempotencyConflictError (ErrConflict)", err)
		}
		if want := `Idempotency-Key "build-42" was used for a different request (pipeline p1); use a new key`; err.Error() != want {
			t.Fatalf("error %q, want %q", err, want)
		}
		if !bytes.Equal(persisted(t, h.f), before) {
			t.Fatalf("a refused register changed the state")
		}
	})
	t.Run("different keys same body", func(t *testing.T) {
		r := registered(t, h.registerKeyed("p4", "build-43", "sha256:aa", expires))
		if r.PipelineID != "p4" || r.Existing {
			t.Fatalf("other key = %+v, want new p4", r)
		}
	})
	t.Run("legacy key shapes replay", func(t *testing.T) {
		// The edge refuses these (server tests); Apply must still take
		// them, since an older server accepted keys up to 256 bytes and its
		// log replays on upgrade.
		key := strings.Repeat("k", 2*structs.MaxIdempotencyKeyLen)
		r := registered(t, h.registerKeyed("p5", key, "sha256:aa", expires))
		if r.PipelineID != "p5" || r.Existing {
			t.Fatalf("legacy key = %+v, want new p5", r)
		}
	})
	t.Run("key of the longest length", func(t *testing.T) {
		r := registered(t, h.registerKeyed("p6", strings.Repeat("k", structs.MaxIdempotencyKeyLen), "sha256:aa", expires))
		if r.PipelineID != "p6" {
			t.Fatalf("register = %+v, want p6", r)
		}
	})
}

// TestFSM_PipelineRegister_IdempotencyKeyLegacy: an entry from a server
// older than the key table carries no body hash and no expiry. Its key
// expires a default TTL after its timestamp and matches any body.
func TestFSM_PipelineRegister_IdempotencyKeyLegacy(t *testing.T) {
	h := newHarness(t)
	ts := h.now()
	registered(t, h.registerKeyed("p1", "old", "", time.Time{}))
	rec, _ := h.f.State().IdempotencyKey(nil, "", "old")
	if rec == nil || !rec.ExpiresAt.Equal(ts.Add(structs.DefaultIdempotencyTTL)) || rec.BodyHash != "" {
		t.Fatalf("legacy key record = %+v, want expiry %v and no hash", rec, ts.Add(structs.DefaultIdempotencyTTL))
	}
	if r := registered(t, h.registerKeyed("p2", "old", "sha256:cc", time.Time{})); r.PipelineID != "p1" || !r.Existing {
		t.Fatalf("new entry on a legacy key = %+v, want existing p1", r)
	}
}

func TestFSM_IdempotencyKeySweep(t *testing.T) {
	h := newHarness(t)
	// Entries are one minute apart from t0+1m; keys live 10 minutes.
	registered(t, h.registerKeyed("p1", "k1", "sha256:aa", h.now().Add(10*time.Minute)))
	registered(t, h.registerKeyed("p2", "k2", "sha256:aa", h.now().Add(10*time.Minute)))
	exp1 := h.now().Add(10*time.Minute - 2*time.Minute)

	sweep := func(cutoff time.Time, limit int) any {
		return h.apply(structs.IdempotencyKeySweepRequestType, &structs.IdempotencyKeySweepRequest{
			WriteRequest: h.wr(), Cutoff: cutoff, Limit: limit})
	}
	keys := func() int { ks, _ := h.f.State().IdempotencyKeys(nil); return len(ks) }

	// Before the expiry nothing goes, and nothing is written.
	idx := h.f.State().LatestIndex()
	if r := h.must(structs.IdempotencyKeySweepRequestType, &structs.IdempotencyKeySweepRequest{
		WriteRequest: h.wr(), Cutoff: exp1.Add(-time.Nanosecond)}).(*structs.IdempotencyKeySweepResponse); r.Removed != 0 || keys() != 2 {
		t.Fatalf("early sweep removed %d, %d keys left; want 0, 2", r.Removed, keys())
	}
	if got := h.f.State().LatestIndex(); got != idx {
		t.Fatalf("an empty sweep wrote state at index %d", got)
	}

	// Until the sweep, a key past its expiry is free already: move the
	// entries' clock to k1's expiry (k2 expires a minute later).
	for h.now().Before(exp1) {
		h.must(structs.IdempotencyKeySweepRequestType, &structs.IdempotencyKeySweepRequest{WriteRequest: h.wr(), Cutoff: t0})
	}
	r := registered(t, h.registerKeyed("p3", "k1", "sha256:bb", h.now().Add(10*time.Minute)))
	if r.PipelineID != "p3" || r.Existing {
		t.Fatalf("expired key, other body = %+v; want new p3", r)
	}
	rec, _ := h.f.State().IdempotencyKey(nil, "", "k1")
	if rec.PipelineID != "p3" || rec.CreateIndex != h.index {
		t.Fatalf("reused key record = %+v; want p3 created at %d", rec, h.index)
	}

	// The sweep at k2's expiry removes it and leaves the reused k1.
	resp := sweep(h.now(), 0)
	if sr, ok := resp.(*structs.IdempotencyKeySweepResponse); !ok || sr.Removed != 1 || sr.Index != h.index {
		t.Fatalf("sweep = %v, want 1 removed at index %d", resp, h.index)
	}
	if k, _ := h.f.State().IdempotencyKey(nil, "", "k2"); k != nil {
		t.Fatalf("k2 survived its sweep: %+v", k)
	}
	if k, _ := h.f.State().IdempotencyKey(nil, "", "k1"); k == nil {
		t.Fatalf("the sweep removed the live k1")
	}
	if r := registered(t, h.registerKeyed("p4", "k2", "sha256:dd", h.now().Add(time.Hour))); r.PipelineID != "p4" || r.Existing {
		t.Fatalf("swept key = %+v; want new p4", r)
	}

	// Malformed sweeps are refused the same way everywhere.
	for _, tc := range []struct {
		req   *structs.IdempotencyKeySweepRequest
		field string
	}{
		{&structs.IdempotencyKeySweepRequest{WriteRequest: h.wr()}, "cutoff"},
		{&structs.IdempotencyKeySweepRequest{WriteRequest: h.wr(), Cutoff: h.now(), Limit: -1}, "limit"},
		{&structs.IdempotencyKeySweepRequest{WriteRequest: structs.WriteRequest{Timestamp: time.Date(9500, 1, 1, 0, 0, 0, 0, time.UTC)},
			Cutoff: h.now()}, "timestamp"},
	} {
		err := errOf(h.apply(structs.IdempotencyKeySweepRequestType, tc.req))
		if !errors.Is(err, structs.ErrInvalidRequest) || !strings.Contains(err.Error(), tc.field+":") {
			t.Fatalf("sweep %+v: %v; want refused as an invalid request naming %s", tc.req, err, tc.field)
		}
	}

	// Another FSM fed the same log ends in the same bytes.
	replay, err := New(nil)
	if err != nil {
		t.Fatal(err)
	}
	replay.ApplyBatch(h.logs)
	if a, b := persisted(t, h.f), persisted(t, replay); !bytes.Equal(a, b) {
		t.Fatalf("replayed state differs:\n%s\nvs\n%s", a, b)
	}
	if !strings.Contains(string(persisted(t, replay)), `"table":"`+state.TableIdempotencyKeys+`"`) {
		t.Fatalf("the replayed snapshot has no idempotency keys")
	}
}
