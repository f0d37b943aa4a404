package state

import (
	"fmt"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/ciplat/ciplat/fsm/structs"
)

func idemKey(ns, key, pipelineID string, expires time.Time) *structs.IdempotencyKey {
	return &structs.IdempotencyKey{Namespace: ns, Key: key, BodyHash: "sha256:" + key, PipelineID: pipelineID, ExpiresAt: expires}
}

func keyNames(ks []*structs.IdempotencyKey) []string {
	out := []string{}
	for _, k := range ks {
		out = append(out, k.Namespace+"/"+k.Key)
	}
	return out
}

func TestStateStore_IdempotencyKeys(t *testing.T) {
	s := testStore(t)
	put := func(index uint64, ks ...*structs.IdempotencyKey) {
		t.Helper()
		err := s.Write(index, func(tx *WriteTxn) error {
			for _, k := range ks {
				if err := tx.UpsertIdempotencyKey(k); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatalf("UpsertIdempotencyKey: %v", err)
		}
	}
	put(3, idemKey("", "k1", "p1", t0.Add(time.Hour)), idemKey("", "k2", "p2", t0))
	// The same key in another namespace is another record.
	put(4, idemKey("team-a", "k1", "p3", t0.Add(-time.Hour)))

	got, err := s.IdempotencyKey(nil, "", "k1")
	if err != nil || got == nil || got.PipelineID != "p1" || got.CreateIndex != 3 {
		t.Fatalf("IdempotencyKey(\"\", k1) = %+v, %v; want p1 created at 3", got, err)
	}
	if got, _ := s.IdempotencyKey(nil, "team-a", "k1"); got == nil || got.PipelineID != "p3" {
		t.Fatalf("IdempotencyKey(team-a, k1) = %+v; want p3", got)
	}
	if got, _ := s.IdempotencyKey(nil, "", "nope"); got != nil {
		t.Fatalf("IdempotencyKey(nope) = %+v; want nil", got)
	}
	all, _ := s.IdempotencyKeys(nil)
	if got, want := keyNames(all), []string{"/k1", "/k2", "team-a/k1"}; !slices.Equal(got, want) {
		t.Fatalf("IdempotencyKeys = %v, want %v", got, want)
	}
	if at, ok, _ := s.EarliestIdempotencyExpiry(nil); !ok || !at.Equal(t0.Add(-time.Hour)) {
		t.Fatalf("EarliestIdempotencyExpiry = %v, %v; want %v", at, ok, t0.Add(-time.Hour))
	}

	// Replacing a key for the same pipeline keeps its CreateIndex; for
	// another pipeline (the key expired and was used again) it starts anew.
	put(5, idemKey("", "k1", "p1", t0.Add(2*time.Hour)))
	if got, _ := s.IdempotencyKey(nil, "", "k1"); got.CreateIndex != 3 || got.ModifyIndex != 5 {
		t.Fatalf("same pipeline: indexes %d/%d, want 3/5", got.CreateIndex, got.ModifyIndex)
	}
	put(6, idemKey("", "k1", "p9", t0.Add(2*time.Hour)))
	if got, _ := s.IdempotencyKey(nil, "", "k1"); got.CreateIndex != 6 || got.PipelineID != "p9" {
		t.Fatalf("other pipeline: %+v, want p9 created at 6", got)
	}
	if got := s.Index(TableIdempotencyKeys); got != 6 {
		t.Fatalf("Index(idempotency_keys) = %d, want 6", got)
	}

	bad := []*structs.IdempotencyKey{nil, {PipelineID: "p"}, {Key: "k"}}
	for _, k := range bad {
		if err := s.Write(7, func(tx *WriteTxn) error { return tx.UpsertIdempotencyKey(k) }); err == nil {
			t.Fatalf("UpsertIdempotencyKey(%+v): want an error", k)
		}
	}
}

func TestWriteTxn_DeleteExpiredIdempotencyKeys(t *testing.T) {
	tests := []struct {
		name    string
		cutoff  time.Time
		limit   int
		removed []string // in expiry order
	}{
		{"nothing expired", t0.Add(-2 * time.Hour), 0, nil},
		{"expiry equal to the cutoff is expired", t0, 0, []string{"/c", "team-a/a", "/b"}},
		{"one nanosecond before", t0.Add(-time.Nanosecond), 0, []string{"/c", "team-a/a"}},
		{"all", t0.Add(48 * time.Hour), 0, []string{"/c", "team-a/a", "/b", "/a"}},
		{"limit takes the soonest", t0.Add(48 * time.Hour), 2, []string{"/c", "team-a/a"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := testStore(t)
			err := s.Write(1, func(tx *WriteTxn) error {
				for _, k := range []*structs.IdempotencyKey{
					idemKey("", "a", "p1", t0.Add(24*time.Hour)),
					idemKey("", "b", "p2", t0),
					idemKey("", "c", "p3", t0.Add(-time.Hour)),
					idemKey("team-a", "a", "p4", t0.Add(-time.Minute)),
				} {
					if err := tx.UpsertIdempotencyKey(k); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			before, _ := s.IdempotencyKeys(nil)
			var n int
			if err := s.Write(2, func(tx *WriteTxn) error {
				n, err = tx.DeleteExpiredIdempotencyKeys(tt.cutoff, tt.limit)
				return err
			}); err != nil {
				t.Fatalf("DeleteExpiredIdempotencyKeys: %v", err)
			}
			after, _ := s.IdempotencyKeys(nil)
			var removed []string
			for _, k := range before {
				if !slices.Contains(keyNames(after), k.Namespace+"/"+k.Key) {
					removed = append(removed, k.Namespace+"/"+k.Key)
				}
			}
			slices.SortFunc(removed, func(a, b string) int {
				return slices.Index(tt.removed, a) - slices.Index(tt.removed, b)
			})
			if n != len(tt.removed) || !slices.Equal(removed, tt.removed) {
				t.Fatalf("removed %d: %v, want %v", n, removed, tt.removed)
			}
			wantIndex := uint64(1)
			if n > 0 {
				wantIndex = 2
			}
			if got := s.Index(TableIdempotencyKeys); got != wantIndex {
				t.Fatalf("Index(idempotency_keys) = %d, want %d", got, wantIndex)
			}
		})
	}
}

// BenchmarkWriteTxn_DeleteExpiredIdempotencyKeys is one sweep entry
// removing batch expired keys from a table of 100,000 keys (the leader's
// batch is idempotencySweepBatch in server/idempotency_sweep.go).
func BenchmarkWriteTxn_DeleteExpiredIdempotencyKeys(b *testing.B) {
	const total = 100_000
	for _, batch := range []int{500, 1000, 2000, 5000} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				s, err := NewStateStore()
				if err != nil {
					b.Fatal(err)
				}
				err = s.Write(1, func(tx *WriteTxn) error {
					for k := range total {
						exp := t0.Add(time.Duration(k-batch) * time.Second) // the first batch expire before t0
						if err := tx.UpsertIdempotencyKey(idemKey("", fmt.Sprintf("key-%06d", k), "p", exp)); err != nil {
							return err
						}
					}
					return nil
				})
				if err != nil {
					b.Fatal(err)
				}
				runtime.GC() // the setup's garbage is not the sweep's cost
				b.StartTimer()
				var n int
				err = s.Write(2, func(tx *WriteTxn) error {
					n, err = tx.DeleteExpiredIdempotencyKeys(t0.Add(-time.Nanosecond), batch)
					return err
				})
				if err != nil || n != batch {
					b.Fatalf("swept %d, %v; want %d", n, err, batch)
				}
			}
		})
	}
}
