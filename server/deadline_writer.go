package server

import (
	"errors"
	"net/http"
	"time"
)

// deadlineWriter gives every write and flush of a streamed response its own
// deadline (http.ResponseController.SetWriteDeadline), so a peer that stops
// reading fails the stream within timeout instead of holding it open. The
// agent has no global write timeout (blocking queries and streams last long),
// so every streamed response writes through one: log streams, the event
// stream, a snapshot download and a response forwarded from the leader. The
// timeout is Config.Logs.WriteTimeout (-log-write-timeout). It is an
// http.ResponseWriter (with Unwrap, for http.ResponseController), so it can
// be handed to an httputil.ReverseProxy. One goroutine uses it at a time.
type deadlineWriter struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
	failed  bool // a write or flush failed: the peer is gone or too slow
}

func newDeadlineWriter(w http.ResponseWriter, timeout time.Duration) *deadlineWriter {
	return &deadlineWriter{w: w, rc: http.NewResponseController(w), timeout: timeout}
}

// Header is the wrapped writer's header map.
func (d *deadlineWriter) Header() http.Header { return d.w.Header() }

// WriteHeader sends the status line and headers, under the deadline.
func (d *deadlineWriter) WriteHeader(code int) {
	d.arm()
	d.w.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the wrapped writer.
func (d *deadlineWriter) Unwrap() http.ResponseWriter { return d.w }

func (d *deadlineWriter) arm() {
	// ErrNotSupported (a recorder in tests) leaves writes without deadline.
	_ = d.rc.SetWriteDeadline(time.Now().Add(d.timeout))
}

func (d *deadlineWriter) Write(p []byte) (int, error) {
	d.arm()
	n, err := d.w.Write(p)
	if err != nil {
		d.failed = true
	}
	return n, err
}

// Flush sends what is buffered.
func (d *deadlineWriter) Flush() error {
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

// end clears the deadline after a stream ended well, so a kept-alive
// connection's next response does not inherit it.
func (d *deadlineWriter) end() { _ = d.rc.SetWriteDeadline(time.Time{}) }
