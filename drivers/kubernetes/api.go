package kubernetes

import (
	"errors"
	"io"
	"net"
	"syscall"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// The API server is behind the breaker and the retry policy of the shared
// breaker.Caller (Driver.api). Every short call the driver makes goes
// through its Call, which returns fn's last error as is, so callers can
// test it with apierrors, or an error wrapping ErrAPIUnavailable when the
// breaker refused the call. The long-lived streams (an exec's output, the
// informer's watch) do not, but their owners report their failures to the
// breaker (Report).

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
