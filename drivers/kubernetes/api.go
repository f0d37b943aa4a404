package kubernetes

import (
	"github.com/ciplat/ciplat/drivers/internal/breaker"

	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"syscall"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// apiClient is the API server behind the breaker and the retry policy.
// Every short call the driver makes goes through call; the long-lived
// streams (an exec's output, the informer's watch) do not, but their
// failures are reported to the breaker by their owners.
type apiClient struct {
	br          *breaker.Breaker
	retries     int
	backoff     time.Duration
	callTimeout time.Duration
	log         *slog.Logger
}

// call runs fn through the breaker under a context bounded by callTimeout.
// When retry is true (fn is idempotent), a transient failure is retried up
// to retries times with exponential backoff. It returns fn's last error as
// is, so callers can test it with apierrors, or an error wrapping
// ErrAPIUnavailable when the breaker refused the call.
func (a *apiClient) call(ctx context.Context, op string, retry bool, fn func(ctx context.Context) error) error {
	delay := a.backoff
	for attempt := 0; ; attempt++ {
		if err := a.br.Allow(); err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
		cctx, cancel := context.WithTimeout(ctx, a.callTimeout)
		err := fn(cctx)
		timedOut := err != nil && cctx.Err() != nil && ctx.Err() == nil
		cancel()
		o := classify(ctx, err, timedOut)
		a.br.Done(o, err)
		if err == nil {
			return nil
		}
		if timedOut {
			err = fmt.Errorf("API server did not answer within %v: %w", a.callTimeout, err)
		}
		if o != failed || !retry || attempt >= a.retries {
			return err
		}
		a.log.Debug("API call failed; retrying", "op", op, "attempt", attempt+1, "backoff", delay, "err", err)
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

// report tells the breaker how a call made outside call (an exec stream)
// went.
func (a *apiClient) report(ctx context.Context, err error) {
	a.br.Done(classify(ctx, err, false), err)
}

// classify tells the breaker what err says about the API server (transient
// decides which errors count against it).
func classify(ctx context.Context, err error, timedOut bool) outcome {
	return breaker.Classify(ctx, err, timedOut, transient)
}

// transient reports whether err is a failure to reach the API server or an
// answer that says "try again later", worth a retry.
func transient(err error) bool {
	var netErr net.Error
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EPIPE),
		errors.As(err, &netErr),
		apierrors.IsServerTimeout(err), apierrors.IsTimeout(err),
		apierrors.IsServiceUnavailable(err), apierrors.IsTooManyRequests(err),
		apierrors.IsInternalError(err): // etcd unreachable, a webhook down
		return true
	}
	return false
}
