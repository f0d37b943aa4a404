package breaker

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

var errUnavailable = errors.New("thing unavailable")

// fakeClock is a clock the test moves.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time      { return c.t }
func (c *fakeClock) add(d time.Duration) { c.t = c.t.Add(d) }
func newFakeClock() *fakeClock           { return &fakeClock{t: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)} }
func mustAllow(t *testing.T, b *Breaker) { t.Helper(); mustNil(t, b.Allow()) }
func mustNil(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
func mustRefuse(t *testing.T, b *Breaker) error {
	t.Helper()
	err := b.Allow()
	if !errors.Is(err, errUnavailable) {
		t.Fatalf("allow() = %v, want an error wrapping errUnavailable", err)
	}
	return err
}

func TestBreaker(t *testing.T) {
	clock := newFakeClock()
	b := New(3, time.Minute, clock.now, errUnavailable)
	boom := errors.New("boom")

	// Failures in a row open it; a success in between resets the count.
	for range 2 {
		mustAllow(t, b)
		b.Done(Failed, boom)
	}
	mustAllow(t, b)
	b.Done(Succeeded, nil)
	for range 2 {
		mustAllow(t, b)
		b.Done(Failed, boom)
	}
	if s, _ := b.Status(); s != Closed {
		t.Fatalf("state after 2 failures = %v, want closed", s)
	}
	mustAllow(t, b)
	b.Done(Failed, boom)
	s, reason := b.Status()
	if s != Open || !strings.Contains(reason, "3 consecutive failures") || !strings.Contains(reason, "boom") {
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
	b.Done(Neutral, context.Canceled)
	mustAllow(t, b)
	// A failed probe opens it for another cooldown.
	b.Done(Failed, boom)
	mustRefuse(t, b)
	clock.add(59 * time.Second)
	mustRefuse(t, b)
	clock.add(time.Second)
	mustAllow(t, b)
	b.Done(Succeeded, nil)
	if s, _ := b.Status(); s != Closed {
		t.Fatalf("state after a good probe = %v, want closed", s)
	}
	mustAllow(t, b)
	mustAllow(t, b)
}

func TestClassify(t *testing.T) {
	flaky := errors.New("connection refused")
	transient := func(err error) bool { return errors.Is(err, flaky) }
	done, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		name     string
		ctx      context.Context
		err      error
		timedOut bool
		want     Outcome
	}{
		{"answered", context.Background(), nil, false, Succeeded},
		{"timed out", context.Background(), context.DeadlineExceeded, true, Failed},
		{"caller gave up", done, context.Canceled, false, Neutral},
		{"unreachable", context.Background(), flaky, false, Failed},
		{"answered no", context.Background(), errors.New("not found"), false, Succeeded},
	} {
		if got := Classify(tc.ctx, tc.err, tc.timedOut, transient); got != tc.want {
			t.Errorf("%s: Classify = %v, want %v", tc.name, got, tc.want)
		}
	}
}
