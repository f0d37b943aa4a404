package breaker

import (
	"context"
	"fmt"
	"log/slog"
	"time"
)

// Caller makes a driver's short calls to its API (the Docker engine, the
// Kubernetes API server) through a Breaker: each attempt is bounded by
// Timeout, its outcome is reported to the breaker (Classify with
// Transient), and a transient failure of an idempotent call is retried up
// to Retries times with exponential backoff from Backoff. Its fields are
// set once, before the first call; it is then safe for concurrent use.
type Caller struct {
	Breaker *Breaker
	// Transient reports whether an error is a failure to reach the API or
	// an answer that says "try again later": it counts against the
	// breaker and is worth a retry.
	Transient func(error) bool
	Retries   int
	Backoff   time.Duration
	// Timeout bounds each attempt of Call.
	Timeout time.Duration
	// Peer names the API in the error of an attempt that timed out
	// ("engine", "API server").
	Peer string
	Log  *slog.Logger
}

// CallOptions are the per-call choices of Do.
type CallOptions struct {
	// Retry says the call is idempotent: a transient failure is retried.
	Retry bool
	// NoTimeout leaves the attempt bounded by ctx only, not Timeout.
	NoTimeout bool
	// Transient replaces Caller.Transient for this call (nil: the
	// Caller's), so a call whose failures may be someone else's (the
	// engine pulling from a registry) counts only what is the API's.
	Transient func(error) bool
}

// Call runs fn through the breaker under a context bounded by Timeout.
// When retry is true (fn is idempotent), a transient failure is retried
// up to Retries times with exponential backoff. It returns fn's last error
// as is, so callers can test it with the API's error helpers, or an error
// wrapping the breaker's unavailable sentinel when the breaker refused the
// call.
func (c *Caller) Call(ctx context.Context, op string, retry bool, fn func(ctx context.Context) error) error {
	return c.Do(ctx, op, CallOptions{Retry: retry}, fn)
}

// Do is Call with the per-call choices of o.
func (c *Caller) Do(ctx context.Context, op string, o CallOptions, fn func(ctx context.Context) error) error {
	transient := o.Transient
	if transient == nil {
		transient = c.Transient
	}
	timeout := c.Timeout
	if o.NoTimeout {
		timeout = 0
	}
	delay := c.Backoff
	for attempt := 0; ; attempt++ {
		if err := c.Breaker.Allow(); err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
		cctx, cancel := ctx, context.CancelFunc(func() {})
		if timeout > 0 {
			cctx, cancel = context.WithTimeout(ctx, timeout)
		}
		err := fn(cctx)
		timedOut := err != nil && cctx.Err() != nil && ctx.Err() == nil
		cancel()
		outcome := Classify(ctx, err, timedOut, transient)
		c.Breaker.Done(outcome, err)
		if err == nil {
			return nil
		}
		if timedOut {
			err = fmt.Errorf("%s did not answer within %v: %w", c.Peer, timeout, err)
		}
		if outcome != Failed || !o.Retry || attempt >= c.Retries {
			return err
		}
		c.Log.Debug(c.Peer+" call failed; retrying", "op", op, "attempt", attempt+1, "backoff", delay, "err", err)
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return err
		}
		delay *= 2
	}
}

// Report tells the breaker how a call made outside Call went (a stream
// the API returned, an exec), classified with Transient.
func (c *Caller) Report(ctx context.Context, err error) {
	c.Breaker.Done(Classify(ctx, err, false, c.Transient), err)
}
