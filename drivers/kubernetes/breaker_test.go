package kubernetes

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// fakeClock is a clock the test moves.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time      { return c.t }
func (c *fakeClock) add(d time.Duration) { c.t = c.t.Add(d) }
func newFakeClock() *fakeClock           { return &fakeClock{t: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)} }
func mustAllow(t *testing.T, b *breaker) { t.Helper(); mustNil(t, b.allow()) }
func mustNil(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
func mustRefuse(t *testing.T, b *breaker) error {
	t.Helper()
	err := b.allow()
	if !errors.Is(err, ErrAPIUnavailable) {
		t.Fatalf("allow() = %v, want an error wrapping ErrAPIUnavailable", err)
	}
	return err
}

func TestBreaker(t *testing.T) {
	clock := newFakeClock()
	b := newBreaker(3, time.Minute, clock.now)
	boom := errors.New("boom")

	// Failures in a row open it; a success in between resets the count.
	for range 2 {
		mustAllow(t, b)
		b.done(failed, boom)
	}
	mustAllow(t, b)
	b.done(succeeded, nil)
	for range 2 {
		mustAllow(t, b)
		b.done(failed, boom)
	}
	if s, _ := b.status(); s != closed {
		t.Fatalf("state after 2 failures = %v, want closed", s)
	}
	mustAllow(t, b)
	b.done(failed, boom)
	s, reason := b.status()
	if s != open || !strings.Contains(reason, "3 consecutive failures") || !strings.Contains(reason, "boom") {
		t.Fatalf("status = %v %q, want open after 3 failures, naming the last", s, reason)
	}
	err := mustRefuse(t, b)
	if !strings.Contains(err.Error(), "next probe at 2030-01-01T00:01:00Z") {
		t.Errorf("refusal %q does not say when the next probe is", err)
	}

	// After the cooldown one probe goes through; others wait for it.
	clock.add(time.Minute)
	mustAllow(t, b)
	if err := mustRefuse(t, b); !strings.Contains(err.Error(), "half-open") {
		t.Errorf("second call during the probe: %v", err)
	}
	// A probe that tells nothing (its caller gave up) lets the next probe.
	b.done(neutral, context.Canceled)
	mustAllow(t, b)
	// A failed probe opens it for another cooldown.
	b.done(failed, boom)
	mustRefuse(t, b)
	clock.add(59 * time.Second)
	mustRefuse(t, b)
	clock.add(time.Second)
	mustAllow(t, b)
	b.done(succeeded, nil)
	if s, _ := b.status(); s != closed {
		t.Fatalf("state after a good probe = %v, want closed", s)
	}
	mustAllow(t, b)
	mustAllow(t, b)
}

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
	if s, _ := e.br.status(); s != closed {
		t.Errorf("an answer after failures should reset the breaker, state %v", s)
	}
	// A call that exceeds the API server's timeout counts against it.
	e.callTimeout = 10 * time.Millisecond
	e.retries = 0
	err = e.call(t.Context(), "slow", true, func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() })
	if err == nil || !strings.Contains(err.Error(), "did not answer within") {
		t.Errorf("slow call: %v", err)
	}
	if e.br.failures != 1 {
		t.Errorf("failures after a timeout = %d, want 1", e.br.failures)
	}
}

// netErr is a transient network error.
type netErr struct{}

func (*netErr) Error() string   { return "connection reset" }
func (*netErr) Timeout() bool   { return false }
func (*netErr) Temporary() bool { return true }

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }
