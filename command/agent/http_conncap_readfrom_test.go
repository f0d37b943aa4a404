package agent

import (
	"bytes"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
)

// readFromConn is a net.Conn that records whether a copy went through its
// ReadFrom (the sendfile path of a *net.TCPConn).
type readFromConn struct {
	net.Conn
	got      bytes.Buffer
	readFrom bool
}

func (c *readFromConn) ReadFrom(r io.Reader) (int64, error) {
	c.readFrom = true
	return c.got.ReadFrom(r)
}

// TestCappedConn_KeepsReadFrom: the cap's wrapper must not hide the
// conn's io.ReaderFrom, or net/http loses sendfile for files it serves.
func TestCappedConn_KeepsReadFrom(t *testing.T) {
	l := newConnCapListener(nil, 0)
	inner := &readFromConn{}
	var c net.Conn = &cappedConn{Conn: inner, l: l}
	rf, ok := c.(io.ReaderFrom)
	if !ok {
		t.Fatal("cappedConn is not an io.ReaderFrom")
	}
	n, err := rf.ReadFrom(strings.NewReader("snapshot bytes"))
	if err != nil || n != 14 || !inner.readFrom || inner.got.String() != "snapshot bytes" {
		t.Fatalf("ReadFrom = %d, %v; through the conn's ReadFrom %v, got %q", n, err, inner.readFrom, inner.got.String())
	}
	if _, ok := c.(syscall.Conn); !ok {
		t.Fatal("cappedConn is not a syscall.Conn")
	}
}

// TestCappedConn_ReadFromOverRealTCP: over a real *net.TCPConn the bytes
// arrive whole (the sendfile/splice path).
func TestCappedConn_ReadFromOverRealTCP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cl := newConnCapListener(ln, 1)
	got := make(chan []byte, 1)
	go func() {
		d, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			got <- nil
			return
		}
		defer d.Close()
		b, _ := io.ReadAll(d)
		got <- b
	}()
	c, err := cl.Accept()
	if err != nil {
		t.Fatal(err)
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		t.Fatal("the accepted conn is not a syscall.Conn")
	}
	if _, err := sc.SyscallConn(); err != nil {
		t.Fatalf("SyscallConn: %v", err)
	}
	rf, ok := c.(io.ReaderFrom)
	if !ok {
		t.Fatal("the accepted conn is not an io.ReaderFrom")
	}
	want := bytes.Repeat([]byte("x"), 1<<20)
	if n, err := rf.ReadFrom(bytes.NewReader(want)); err != nil || n != int64(len(want)) {
		t.Fatalf("ReadFrom = %d, %v", n, err)
	}
	c.Close()
	if b := <-got; !bytes.Equal(b, want) {
		t.Fatalf("peer got %d bytes, want %d", len(b), len(want))
	}
	if s := cl.stats(); s.Open != 0 {
		t.Fatalf("open = %d after close, want 0", s.Open)
	}
}
