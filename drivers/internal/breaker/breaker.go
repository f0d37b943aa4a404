// Package breaker is the consecutive-failure circuit breaker the container
// drivers (docker, kubernetes) put in front of their API: after a run of
// failures calls fail at once with an error wrapping the driver's
// "unavailable" sentinel, and after a cooldown one probe call decides.
// Caller is the one retrying call both drivers make through it: a timeout
// per attempt, the outcome reported, idempotent calls retried with backoff.
// It imports only the standard library; Breaker and Caller are safe for
// concurrent use.
package breaker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Outcome is how one call went, for the breaker.
type Outcome int

const (
	// Succeeded: the API answered, even with "not found" or "conflict".
	Succeeded Outcome = iota
	// Failed: the API could not be reached, timed out, or said it is
	// unavailable.
	Failed
	// Neutral: the call says nothing about the API (the caller's
	// context ended first).
	Neutral
)

// State is closed (calls flow), open (calls refused) or half-open
// (one probe in flight decides).
type State int

const (
	// Closed: calls flow.
	Closed State = iota
	// Open: calls are refused until the cooldown has passed.
	Open
	// HalfOpen: one probe call is in flight and decides.
	HalfOpen
)

func (s State) String() string {
	return [...]string{"closed", "open", "half-open"}[s]
}

// Breaker is a consecutive-failure circuit breaker. Closed, it lets every
// call through and counts failures in a row; at threshold it opens. Open,
// it refuses calls until cooldown has passed; then the next call becomes
// the probe (half-open) while other calls are still refused. The probe's
// success closes the breaker; its failure opens it for another cooldown.
// It is safe for concurrent use. Time comes from now, so tests drive it.
type Breaker struct {
	threshold int
	cooldown  time.Duration
	now       func() time.Time
	// unavailable is wrapped by every refusal (the driver's sentinel).
	unavailable error

	mu       sync.Mutex
	state    State
	failures int       // consecutive, while closed
	lastErr  error     // the failure that opened it, or the last one
	openedAt time.Time // when it last opened
}

// New returns a closed breaker that opens after threshold consecutive
// failures for cooldown; its refusals wrap unavailable. now is its clock.
func New(threshold int, cooldown time.Duration, now func() time.Time, unavailable error) *Breaker {
	if unavailable == nil {
		unavailable = errors.New("unavailable")
	}
	return &Breaker{threshold: threshold, cooldown: cooldown, now: now, unavailable: unavailable}
}

// OpenError is what a refused call returns. It wraps the breaker's
// unavailable sentinel.
type OpenError struct {
	unavailable error
	failures    int
	lastErr     error
	retryAt     time.Time
	probing     bool
}

func (e *OpenError) Error() string {
	if e.probing {
		return fmt.Sprintf("%v: circuit half-open, a probe call is in flight (opened after %d consecutive failures, last: %v)", e.unavailable, e.failures, e.lastErr)
	}
	return fmt.Sprintf("%v: circuit open after %d consecutive failures (last: %v); next probe at %s", e.unavailable, e.failures, e.lastErr, e.retryAt.Format(time.RFC3339))
}

func (e *OpenError) Unwrap() error { return e.unavailable }

// Allow asks to make a call. It returns nil when the call may go ahead,
// and then the caller must report with Done; otherwise an *OpenError.
func (b *Breaker) Allow() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch b.state {
	case Closed:
		return nil
	case Open:
		if retryAt := b.openedAt.Add(b.cooldown); b.now().Before(retryAt) {
			return &OpenError{unavailable: b.unavailable, failures: b.failures, lastErr: b.lastErr, retryAt: retryAt}
		}
		b.state = HalfOpen // this call is the probe
		return nil
	default: // HalfOpen: the probe decides
		return &OpenError{unavailable: b.unavailable, failures: b.failures, lastErr: b.lastErr, probing: true}
	}
}

// Done reports the outcome of a call that Allow let through.
func (b *Breaker) Done(o Outcome, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch o {
	case Succeeded:
		b.state, b.failures, b.lastErr = Closed, 0, nil
	case Failed:
		b.lastErr = err
		switch b.state {
		case Closed:
			b.failures++
			if b.failures >= b.threshold {
				b.state, b.openedAt = Open, b.now()
			}
		case HalfOpen:
			b.failures++
			b.state, b.openedAt = Open, b.now()
		}
	case Neutral:
		if b.state == HalfOpen { // the probe told nothing: let the next call probe
			b.state = Open
		}
	}
}

// Status returns the state, and the reason when it is not closed.
func (b *Breaker) Status() (State, string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state == Closed {
		return Closed, ""
	}
	return b.state, fmt.Sprintf("circuit %s after %d consecutive failures (last: %v)", b.state, b.failures, b.lastErr)
}

// Failures returns the count of consecutive failures.
func (b *Breaker) Failures() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.failures
}

// Classify tells the breaker what err says about the API behind it. Only
// failures to reach it, its timeouts and answers transient calls "try
// again later" count against it: an API that answers "not found" or
// "conflict" is healthy, and a call whose caller gave up (ctx ended) says
// nothing. timedOut is the call's own deadline passing.
func Classify(ctx context.Context, err error, timedOut bool, transient func(error) bool) Outcome {
	switch {
	case err == nil:
		return Succeeded
	case timedOut:
		return Failed
	case ctx.Err() != nil:
		return Neutral
	case transient(err):
		return Failed
	default:
		return Succeeded
	}
}
