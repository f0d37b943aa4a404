package server

import (
	"net/http/httptest"
	"testing"
	"time"
)

// TestRoutes_OnlyRestoreGetsLargeBodyDeadlines: raising -limit-spec-bytes
// above the default body cap must not give the spec routes the restore's
// 10-minute read and forward deadlines; only the snapshot restore has them.
func TestRoutes_OnlyRestoreGetsLargeBodyDeadlines(t *testing.T) {
	cfg := Config{ForwardTimeout: 10 * time.Second}
	cfg.SpecLimits.SpecBytes = 2 << 20 // -limit-spec-bytes 2097152
	s := &Server{cfg: cfg}
	var sawSpec, sawRestore bool
	for _, rt := range s.routes() {
		r := httptest.NewRequest(rt.method, rt.path, nil)
		got := s.forwardTimeout(r, rt)
		restore := rt.method == "PUT" && rt.path == "/v1/operator/snapshot"
		if restore {
			sawRestore = true
			if !rt.largeBody || got != cfg.ForwardTimeout+largeBodyReadTimeout {
				t.Errorf("restore: largeBody=%v forward timeout %s, want true and %s", rt.largeBody, got, cfg.ForwardTimeout+largeBodyReadTimeout)
			}
			continue
		}
		if rt.maxBody == 2<<20 {
			sawSpec = true
		}
		if rt.largeBody || got != cfg.ForwardTimeout {
			t.Errorf("%s %s (maxBody %d): largeBody=%v forward timeout %s, want false and %s", rt.method, rt.path, rt.maxBody, rt.largeBody, got, cfg.ForwardTimeout)
		}
	}
	if !sawSpec || !sawRestore {
		t.Fatalf("route table changed: spec route with raised limit seen=%v, restore seen=%v", sawSpec, sawRestore)
	}
}
