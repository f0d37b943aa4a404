package docker

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

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/client"
)

// engine is the Docker API behind the breaker and the retry policy. Every
// call the driver makes to the engine goes through call, except reading a
// stream a call returned (an exec's output, a pull's progress).
type engine struct {
	api         client.APIClient
	br          *breaker.Breaker
	retries     int
	backoff     time.Duration
	callTimeout time.Duration
	log         *slog.Logger
}

// call runs fn through the breaker under a context bounded by callTimeout.
// When retry is true (fn is idempotent), a transient failure is retried
// up to e.retries times with exponential backoff. It returns fn's last
// error unwrapped, so callers can test it with cerrdefs, or an error
// wrapping ErrEngineUnavailable when the breaker refused the call.
func (e *engine) call(ctx context.Context, op string, retry bool, fn func(ctx context.Context) error) error {
	return e.do(ctx, op, retry, e.callTimeout, false, fn)
}

// callRemote is call for an operation where the engine talks to someone
// else (a registry): it is not retried, only ctx bounds it, and only a
// failure to reach the engine itself counts against the breaker, so an
// unreachable registry does not make the engine look down.
func (e *engine) callRemote(ctx context.Context, op string, fn func(ctx context.Context) error) error {
	return e.do(ctx, op, false, 0, true, fn)
}

// do is call with its per-attempt timeout (zero: none) and remote.
func (e *engine) do(ctx context.Context, op string, retry bool, timeout time.Duration, remote bool, fn func(ctx context.Context) error) error {
	delay := e.backoff
	for attempt := 0; ; attempt++ {
		if err := e.br.Allow(); err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
		cctx, cancel := ctx, context.CancelFunc(func() {})
		if timeout > 0 {
			cctx, cancel = context.WithTimeout(ctx, timeout)
		}
		err := fn(cctx)
		timedOut := err != nil && cctx.Err() != nil && ctx.Err() == nil
		cancel()
		o := classify(ctx, err, timedOut)
		if remote && o == failed && !client.IsErrConnectionFailed(err) {
			o = succeeded
		}
		e.br.Done(o, err)
		if err == nil {
			return nil
		}
		if timedOut {
			err = fmt.Errorf("engine did not answer within %v: %w", timeout, err)
		}
		if o != failed || !retry || attempt >= e.retries {
			return err
		}
		e.log.Debug("engine call failed; retrying", "op", op, "attempt", attempt+1, "backoff", delay, "err", err)
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

// classify tells the breaker what err says about the engine (transient
// decides which errors count against it).
func classify(ctx context.Context, err error, timedOut bool) outcome {
	return breaker.Classify(ctx, err, timedOut, transient)
}

// transient reports whether err is a failure to reach the engine or an
// answer that says "try again later", worth a retry.
func transient(err error) bool {
	var netErr net.Error
	switch {
	case client.IsErrConnectionFailed(err),
		errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EPIPE), errors.Is(err, syscall.ENOENT),
		errors.As(err, &netErr),
		cerrdefs.IsUnavailable(err):
		return true
	}
	return false
}
