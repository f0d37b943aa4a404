package httpapi

import (
	"errors"
	"net/http"
	"time"
)

// DeadlineWriter gives every write and flush of a streamed response its own
// deadline (http.ResponseController.SetWriteDeadline), so a peer that stops
// reading fails the stream within timeout instead of holding it open. The
// agent has no global write timeout (blocking queries and streams last long),
// so every streamed response writes through one: log streams, the event
// stream, a snapshot download and a response forwarded from the leader. The
// timeout is Config.Logs.WriteTimeout (-log-write-timeout). It is an
// http.ResponseWriter (with Unwrap, for http.ResponseController), so it can
// be handed to an httputil.ReverseProxy. One goroutine uses it at a time.
type DeadlineWriter struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
	failed  bool // a write or flush failed: the peer is gone or too slow
}

// Failed reports whether a write or flush failed: the peer is gone or too
// slow, and the stream should end without more writes.
func (d *DeadlineWriter) Failed() bool { return d.failed }

// NewDeadlineWriter wraps w; each write and flush gets timeout.
func NewDeadlineWriter(w http.ResponseWriter, timeout time.Duration) *DeadlineWriter {
	return &DeadlineWriter{w: w, rc: http.NewResponseController(w), timeout: timeout}
}

// Header is the wrapped writer's header map.
func (d *DeadlineWriter) Header() http.Header { return d.w.Header() }

// WriteHeader sends the status line and headers, under the deadline.
func (d *DeadlineWriter) WriteHeader(code int) {
	d.arm()
	d.w.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the wrapped writer.
func (d *DeadlineWriter) Unwrap() http.ResponseWriter { return d.w }

func (d *DeadlineWriter) arm() {
	// ErrNotSupported (a recorder in tests) leaves writes without deadline.
	_ = d.rc.SetWriteDeadline(time.Now().Add(d.timeout))
}

func (d *DeadlineWriter) Write(p []byte) (int, error) {
	d.arm()
	n, err := d.w.Write(p)
	if err != nil {
		d.failed = true
	}
	return n, err
}

// Flush sends what is buffered.
func (d *DeadlineWriter) Flush() error {
	d.arm()
	err := d.rc.Flush()
	if errors.Is(err, http.ErrNotSupported) {
		err = nil
	}
	if err != nil {
		d.failed = true
	}
	return err
}

// End clears the deadline after a stream ended well, so a kept-alive
// connection's next response does not inherit it.
func (d *DeadlineWriter) End() { _ = d.rc.SetWriteDeadline(time.Time{}) }
