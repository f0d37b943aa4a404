// This file is a copy of drivers/docker/breaker.go with the names changed:
// the two drivers share no code (each is a self-contained package a plugin
// author can read alone), and the breaker is small. Fix a bug in both.

package kubernetes

import (
	"fmt"
	"sync"
	"time"
)

// outcome is how one API call went, for the breaker.
type outcome int

const (
	// succeeded: the API server answered, even with "not found" or "conflict".
	succeeded outcome = iota
	// failed: the API server could not be reached, timed out, or said it is
	// unavailable.
	failed
	// neutral: the call says nothing about the API server (the caller's
	// context ended first).
	neutral
)

// breakerState is closed (calls flow), open (calls refused) or half-open
// (one probe in flight decides).
type breakerState int

const (
	closed breakerState = iota
	open
	halfOpen
)

func (s breakerState) String() string {
	return [...]string{"closed", "open", "half-open"}[s]
}

// breaker is a consecutive-failure circuit breaker. Closed, it lets every
// call through and counts failures in a row; at threshold it opens. Open,
// it refuses calls until cooldown has passed; then the next call becomes
// the probe (half-open) while other calls are still refused. The probe's
// success closes the breaker; its failure opens it for another cooldown.
// It is safe for concurrent use. Time comes from now, so tests drive it.
type breaker struct {
	threshold int
	cooldown  time.Duration
	now       func() time.Time

	mu       sync.Mutex
	state    breakerState
	failures int       // consecutive, while closed
	lastErr  error     // the failure that opened it, or the last one
	openedAt time.Time // when it last opened
}

// newBreaker returns a closed breaker.
func newBreaker(threshold int, cooldown time.Duration, now func() time.Time) *breaker {
	return &breaker{threshold: threshold, cooldown: cooldown, now: now}
}

// openError is what a refused call returns. It wraps ErrAPIUnavailable.
type openError struct {
	failures int
	lastErr  error
	retryAt  time.Time
	probing  bool
}

func (e *openError) Error() string {
	if e.probing {
		return fmt.Sprintf("%v: circuit half-open, a probe call is in flight (opened after %d consecutive failures, last: %v)", ErrAPIUnavailable, e.failures, e.lastErr)
	}
	return fmt.Sprintf("%v: circuit open after %d consecutive failures (last: %v); next probe at %s", ErrAPIUnavailable, e.failures, e.lastErr, e.retryAt.Format(time.RFC3339))
}

func (e *openError) Unwrap() error { return ErrAPIUnavailable }

// allow asks to make a call. It returns nil when the call may go ahead,
// and then the caller must report with done; otherwise an *openError.
func (b *breaker) allow() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch b.state {
	case closed:
		return nil
	case open:
		if retryAt := b.openedAt.Add(b.cooldown); b.now().Before(retryAt) {
			return &openError{failures: b.failures, lastErr: b.lastErr, retryAt: retryAt}
		}
		b.state = halfOpen // this call is the probe
		return nil
	default: // halfOpen: the probe decides
		return &openError{failures: b.failures, lastErr: b.lastErr, probing: true}
	}
}

// done reports the outcome of a call that allow let through.
func (b *breaker) done(o outcome, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch o {
	case succeeded:
		b.state, b.failures, b.lastErr = closed, 0, nil
	case failed:
		b.lastErr = err
		switch b.state {
		case closed:
			b.failures++
			if b.failures >= b.threshold {
				b.state, b.openedAt = open, b.now()
			}
		case halfOpen:
			b.failures++
			b.state, b.openedAt = open, b.now()
		}
	case neutral:
		if b.state == halfOpen { // the probe told nothing: let the next call probe
			b.state = open
		}
	}
}

// status returns the state, and the reason when it is not closed.
func (b *breaker) status() (breakerState, string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state == closed {
		return closed, ""
	}
	return b.state, fmt.Sprintf("circuit %s after %d consecutive failures (last: %v)", b.state, b.failures, b.lastErr)
}
