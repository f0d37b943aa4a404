package kubernetes

import (
	"context"
	"errors"
	"github.com/ciplat/ciplat/drivers/internal/breaker"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// fakeClock is a clock the test moves.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }
func newFakeClock() *fakeClock      { return &fakeClock{t: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)} }
func TestAPI_callRetries(t *testing.T) {
	clock := newFakeClock()
	e := &apiClient{br: newBreaker(10, time.Minute, clock.now), retries: 2, backoff: time.Millisecond, callTimeout: time.Second, log: discard()}
	transientErr := &netErr{}
	calls := 0
	err := e.call(t.Context(), "op", true, func(context.Context) error { calls++; return transientErr })
	if calls != 3 || !errors.Is(err, transientErr) {
		t.Errorf("idempotent call: %d attempts, err %v; want 3 and the error", calls, err)
	}
	calls = 0
	e.call(t.Context(), "op", false, func(context.Context) error { calls++; return transientErr })
	if calls != 1 {
		t.Errorf("non-idempotent call: %d attempts, want 1", calls)
	}
	calls = 0
	answered := errors.New("pods \"x\" not found")
	e.call(t.Context(), "op", true, func(context.Context) error { calls++; return answered })
	if calls != 1 {
		t.Errorf("an answer is not retried: %d attempts", calls)
	}
	if s, _ := e.br.Status(); s != breaker.Closed {
		t.Errorf("an answer after failures should reset the breaker, state %v", s)
	}
	// A call that exceeds the API server's timeout counts against it.
	e.callTimeout = 10 * time.Millisecond
	e.retries = 0
	err = e.call(t.Context(), "slow", true, func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() })
	if err == nil || !strings.Contains(err.Error(), "did not answer within") {
		t.Errorf("slow call: %v", err)
	}
	if e.br.Failures() != 1 {
		t.Errorf("failures after a timeout = %d, want 1", e.br.Failures())
	}
}

// netErr is a transient network error.
type netErr struct{}

func (*netErr) Error() string   { return "connection reset" }
func (*netErr) Timeout() bool   { return false }
func (*netErr) Temporary() bool { return true }

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }
