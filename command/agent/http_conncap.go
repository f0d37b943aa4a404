package agent

import (
	"errors"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ciplat/ciplat/server"
)

// connCapListener caps the open connections of the agent's HTTP listener.
// A connection beyond the cap is accepted and answered at once with a 503
// (Retry-After, a JSON error, the security headers) and closed, rather than
// left in the kernel's accept queue as golang.org/x/net/netutil's
// LimitListener does: there a client hangs until its own timeout with no
// clue why, and health checks cannot tell a full agent from a dead one.
//
// Concurrency: Accept is called by the one http.Server loop; a conn's
// Close may be called from any goroutine, more than once.
type connCapListener struct {
	net.Listener
	max  int
	open atomic.Int64
	// rejecting bounds the goroutines answering refused connections; past
	// it a refused connection is closed without an answer.
	rejecting chan struct{}
	// rejected counts connections refused at the cap.
	rejected atomic.Uint64
}

// maxRejecting is how many refused connections are answered at once.
const maxRejecting = 64

// newConnCapListener wraps ln; max <= 0 means no cap (connections are
// only counted).
func newConnCapListener(ln net.Listener, max int) *connCapListener {
	return &connCapListener{Listener: ln, max: max, rejecting: make(chan struct{}, maxRejecting)}
}

// stats reports the open and refused connections for GET /v1/metrics.
func (l *connCapListener) stats() server.ConnStats {
	return server.ConnStats{Open: l.open.Load(), Max: max(l.max, 0), Rejected: l.rejected.Load()}
}

func (l *connCapListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if n := l.open.Add(1); l.max <= 0 || n <= int64(l.max) {
			return &cappedConn{Conn: c, l: l}, nil
		}
		l.open.Add(-1)
		l.rejected.Add(1)
		select {
		case l.rejecting <- struct{}{}:
			go func() {
				defer func() { <-l.rejecting }()
				l.refuse(c)
			}()
		default:
			_ = c.Close()
		}
	}
}

// refuse answers c with a 503 and closes it. The request is read (for up
// to a second) after the answer is written and the write side is shut, so
// the kernel does not reset the connection over unread bytes before the
// client has read the answer.
func (l *connCapListener) refuse(c net.Conn) {
	defer func() { _ = c.Close() }()
	body := `{"error":"this agent has ` + strconv.Itoa(l.max) + ` open HTTP connections (-http-max-conns): retry later"}` + "\n"
	resp := "HTTP/1.1 503 Service Unavailable\r\n" +
		"Content-Type: application/json\r\n" +
		"Retry-After: 1\r\n" +
		"Connection: close\r\n" +
		"Content-Security-Policy: default-src 'self'; frame-ancestors 'none'\r\n" +
		"X-Content-Type-Options: nosniff\r\n" +
		"Referrer-Policy: no-referrer\r\n" +
		"Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := io.WriteString(c, resp); err != nil {
		return
	}
	if tc, ok := c.(interface{ CloseWrite() error }); ok {
		_ = tc.CloseWrite()
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(c, 64<<10))
}

// cappedConn gives its slot back when closed (once).
type cappedConn struct {
	net.Conn
	l    *connCapListener
	once sync.Once
}

func (c *cappedConn) Close() error {
	c.once.Do(func() { c.l.open.Add(-1) })
	return c.Conn.Close()
}

// CloseWrite lets net/http half-close the connection as it does a bare
// *net.TCPConn (so a client reads an error answer before the close).
func (c *cappedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// ReadFrom hands a copy into the connection to the wrapped conn's
// ReadFrom: net/http's response writer copies a file (static UI files, a
// snapshot download) with io.Copy, and only a *net.TCPConn seen through
// io.ReaderFrom gets sendfile/splice instead of a user-space buffer.
func (c *cappedConn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(writerOnly{c.Conn}, r)
}

// writerOnly hides every method but Write, so io.Copy does not come back
// to ReadFrom.
type writerOnly struct{ io.Writer }

// SyscallConn exposes the wrapped conn's file descriptor (socket options),
// as a bare *net.TCPConn does.
func (c *cappedConn) SyscallConn() (syscall.RawConn, error) {
	if sc, ok := c.Conn.(syscall.Conn); ok {
		return sc.SyscallConn()
	}
	return nil, errors.New("the wrapped connection has no file descriptor")
}
