package breaker

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"
)

// netErr is a transient network error.
type netErr struct{}

func (*netErr) Error() string   { return "connection reset" }
func (*netErr) Timeout() bool   { return false }
func (*netErr) Temporary() bool { return true }

// isNetErr is a Caller's Transient: network errors count.
func isNetErr(err error) bool {
	var ne net.Error
	return errors.As(err, &ne)
}

// newCaller returns the Caller the docker and kubernetes drivers build,
// over a breaker of threshold 10 on a fake clock.
func newCaller() *Caller {
	return &Caller{
		Breaker:   New(10, time.Minute, newFakeClock().now, errUnavailable),
		Transient: isNetErr,
		Retries:   2,
		Backoff:   time.Millisecond,
		Timeout:   time.Second,
		Peer:      "API server",
		Log:       slog.New(slog.DiscardHandler),
	}
}

func TestCaller_Call(t *testing.T) {
	c := newCaller()
	transientErr := &netErr{}
	calls := 0
	err := c.Call(t.Context(), "op", true, func(context.Context) error { calls++; return transientErr })
	if calls != 3 || !errors.Is(err, transientErr) {
		t.Errorf("idempotent call: %d attempts, err %v; want 3 and the error", calls, err)
	}
	calls = 0
	c.Call(t.Context(), "op", false, func(context.Context) error { calls++; return transientErr })
	if calls != 1 {
		t.Errorf("non-idempotent call: %d attempts, want 1", calls)
	}
	calls = 0
	answered := errors.New(`pods "x" not found`)
	err = c.Call(t.Context(), "op", true, func(context.Context) error { calls++; return answered })
	if calls != 1 || err != answered {
		t.Errorf("an answer is not retried and comes back as is: %d attempts, err %v", calls, err)
	}
	if s, _ := c.Breaker.Status(); s != Closed {
		t.Errorf("an answer after failures should reset the breaker, state %v", s)
	}
	// A call that exceeds the API's timeout counts against it.
	c.Timeout = 10 * time.Millisecond
	c.Retries = 0
	err = c.Call(t.Context(), "slow", true, func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() })
	if err == nil || !strings.Contains(err.Error(), "API server did not answer within 10ms") {
		t.Errorf("slow call: %v", err)
	}
	if c.Breaker.Failures() != 1 {
		t.Errorf("failures after a timeout = %d, want 1", c.Breaker.Failures())
	}
}

// TestCaller_Call_open: an open breaker refuses calls without running
// them, with an error that names the operation and wraps the sentinel.
func TestCaller_Call_open(t *testing.T) {
	c := newCaller()
	c.Retries = 0
	for range 10 {
		c.Call(t.Context(), "op", true, func(context.Context) error { return &netErr{} })
	}
	ran := false
	err := c.Call(t.Context(), "inspect", true, func(context.Context) error { ran = true; return nil })
	if ran || !errors.Is(err, errUnavailable) || !strings.HasPrefix(err.Error(), "inspect: ") {
		t.Errorf("call on an open breaker: ran %v, err %v", ran, err)
	}
}

// TestCaller_Do_remote: a call with its own Transient and no timeout, as
// the docker driver's image pull: other failures are answers, and only ctx
// bounds it.
func TestCaller_Do_remote(t *testing.T) {
	c := newCaller()
	c.Timeout = time.Nanosecond
	registryDown := &netErr{}
	engineDown := errors.New("cannot connect to the engine")
	remote := CallOptions{NoTimeout: true, Transient: func(err error) bool { return err == engineDown }}
	calls := 0
	err := c.Do(t.Context(), "pull", remote, func(ctx context.Context) error {
		calls++
		if _, ok := ctx.Deadline(); ok {
			t.Error("a NoTimeout call has a deadline")
		}
		return registryDown
	})
	if calls != 1 || err != registryDown || c.Breaker.Failures() != 0 {
		t.Errorf("registry down: %d attempts, err %v, %d failures; want 1, the error, 0", calls, err, c.Breaker.Failures())
	}
	c.Do(t.Context(), "pull", remote, func(context.Context) error { return engineDown })
	if c.Breaker.Failures() != 1 {
		t.Errorf("engine down: %d failures, want 1", c.Breaker.Failures())
	}
}

// TestCaller_Report: a stream's outcome reported outside Call counts as a
// call's would.
func TestCaller_Report(t *testing.T) {
	c := newCaller()
	c.Report(t.Context(), &netErr{})
	c.Report(t.Context(), &netErr{})
	if c.Breaker.Failures() != 2 {
		t.Fatalf("failures = %d, want 2", c.Breaker.Failures())
	}
	c.Report(t.Context(), errors.New("exit status 3"))
	if c.Breaker.Failures() != 0 {
		t.Errorf("an answer did not reset the count: %d", c.Breaker.Failures())
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	c.Report(ctx, &netErr{})
	if c.Breaker.Failures() != 0 {
		t.Errorf("a call its caller gave up on counted: %d", c.Breaker.Failures())
	}
}
