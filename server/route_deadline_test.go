package server

import (
	"net/http/httptest"
	"testing"
	"time"

	"github.com/ciplat/ciplat/server/httpapi"
)

// TestRoutes_OnlyRestoreGetsLargeBodyDeadlines: raising -limit-spec-bytes
// above the default body cap must not give the spec routes the restore's
// 10-minute read and forward deadlines; only the snapshot restore has them.
func TestRoutes_OnlyRestoreGetsLargeBodyDeadlines(t *testing.T) {
	cfg := Config{ForwardTimeout: 10 * time.Second}
	cfg.SpecLimits.SpecBytes = 2 << 20 // -limit-spec-bytes 2097152
	s := &Server{cfg: cfg}
	var sawSpec, sawRestore bool
	for _, rt := range s.httpAPI().Routes() {
		r := httptest.NewRequest(rt.Method, rt.Pattern, nil)
		got := s.forwardTimeout(r, rt)
		restore := rt.Method == "PUT" && rt.Pattern == "/v1/operator/snapshot"
		if restore {
			sawRestore = true
			if !rt.LargeBody || got != cfg.ForwardTimeout+httpapi.LargeBodyReadTimeout {
				t.Errorf("restore: largeBody=%v forward timeout %s, want true and %s", rt.LargeBody, got, cfg.ForwardTimeout+httpapi.LargeBodyReadTimeout)
			}
			continue
		}
		if rt.MaxBody == 2<<20 {
			sawSpec = true
		}
		if rt.LargeBody || got != cfg.ForwardTimeout {
			t.Errorf("%s %s (maxBody %d): largeBody=%v forward timeout %s, want false and %s", rt.Method, rt.Pattern, rt.MaxBody, rt.LargeBody, got, cfg.ForwardTimeout)
		}
	}
	if !sawSpec || !sawRestore {
		t.Fatalf("route table changed: spec route with raised limit seen=%v, restore seen=%v", sawSpec, sawRestore)
	}
}
