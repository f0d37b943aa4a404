package docker

import (
	"context"
	"errors"
	"io"
	"net"
	"syscall"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/client"

	"github.com/ciplat/ciplat/drivers/internal/breaker"
)

// engine is the Docker API behind the breaker and the retry policy of the
// shared breaker.Caller. Every call the driver makes to the engine goes
// through Call (or callRemote), except reading a stream a call returned
// (an exec's output, a pull's progress). Call returns fn's last error
// unwrapped, so callers can test it with cerrdefs, or an error wrapping
// ErrEngineUnavailable when the breaker refused the call.
type engine struct {
	api client.APIClient
	breaker.Caller
}

// callRemote is Call for an operation where the engine talks to someone
// else (a registry): it is not retried, only ctx bounds it, and only a
// failure to reach the engine itself counts against the breaker, so an
// unreachable registry does not make the engine look down.
func (e *engine) callRemote(ctx context.Context, op string, fn func(ctx context.Context) error) error {
	return e.Do(ctx, op, breaker.CallOptions{NoTimeout: true, Transient: client.IsErrConnectionFailed}, fn)
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
