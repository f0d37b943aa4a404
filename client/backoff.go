package client

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/ciplat/ciplat/api"
)

// backoff yields exponentially growing waits with jitter: the n-th wait is
// drawn from [d/2, d) where d = base·2ⁿ capped at max, so many clients that
// lost the same server do not come back in step. Not safe for concurrent use;
// each retry loop owns one.
type backoff struct {
	base, max time.Duration
	n         int
}

func newBackoff(base, max time.Duration) *backoff { return &backoff{base: base, max: max} }

// next returns the wait before the next attempt.
func (b *backoff) next() time.Duration {
	d := b.max
	if b.n < 30 {
		if s := b.base << b.n; s < b.max {
			d = s
		}
	}
	b.n++
	half := d / 2
	if half <= 0 {
		return d
	}
	return half + rand.N(half)
}

// reset starts over from base after a success.
func (b *backoff) reset() { b.n = 0 }

// retryAfter honours a server's Retry-After when it asks for more than d.
func retryAfter(err error, d time.Duration) time.Duration {
	var e *api.Error
	if errors.As(err, &e) && e.RetryAfter > d {
		return e.RetryAfter
	}
	return d
}

// permanent reports whether a request failed in a way a retry cannot fix: the
// server understood and refused it (4xx other than 408 and 429). Network
// errors and 5xx are transient.
func permanent(err error) bool {
	var e *api.Error
	if !errors.As(err, &e) {
		return false
	}
	switch e.StatusCode {
	case http.StatusRequestTimeout, http.StatusTooManyRequests:
		return false
	}
	return e.StatusCode >= 400 && e.StatusCode < 500
}

// sleep waits d on the client's timer source, or until ctx ends.
func (c *Client) sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-c.after(d):
		return nil
	}
}

// retry calls fn until it succeeds, fails permanently, or ctx ends, waiting
// with backoff between attempts. It returns fn's last error, or ctx's.
func (c *Client) retry(ctx context.Context, what string, b *backoff, fn func(context.Context) error) error {
	for {
		err := fn(ctx)
		if err == nil || permanent(err) {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		d := retryAfter(err, b.next())
		c.log.Warn("retrying", "op", what, "err", err, "in", d.Round(time.Millisecond))
		if err := c.sleep(ctx, d); err != nil {
			return err
		}
	}
}
