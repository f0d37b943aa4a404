package server

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// dialStalled opens a raw connection to addr with a tiny receive window:
// the caller sends a request and never reads the answer.
func dialStalled(t *testing.T, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		if err != nil {
			return err
		}
		return serr
	}}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// smallSendListener gives every accepted connection a small send buffer, so
// a reader that never reads fills it after a few KiB.
type smallSendListener struct{ net.Listener }

func (l smallSendListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(4096)
	}
	return c, err
}

// countingServer serves ts's API on a listener with small send buffers and
// counts the handlers still running.
func countingServer(t *testing.T, ts *testServer) (addr string, running *atomic.Int64) {
	t.Helper()
	running = new(atomic.Int64)
	h := ts.srv.HTTPHandler()
	web := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		running.Add(1)
		defer running.Add(-1)
		h.ServeHTTP(w, r)
	}))
	web.Listener = smallSendListener{web.Listener}
	web.Start()
	t.Cleanup(web.Close)
	return web.Listener.Addr().String(), running
}

// TestServer_EventStreamReaderThatNeverReadsIsDropped: the event stream's
// writes have a deadline, so a reader that stops reading is dropped (its
// handler returns) instead of holding the stream forever.
func TestServer_EventStreamReaderThatNeverReadsIsDropped(t *testing.T) {
	ts := newLiveServer(t, func(c *Config) { c.Logs.WriteTimeout = 300 * time.Millisecond })
	addr, running := countingServer(t, ts)
	conn := dialStalled(t, addr)
	if _, err := fmt.Fprintf(conn, "GET /v1/event/stream HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the stream to start", func() bool { return running.Load() == 1 })
	// Events keep coming (each submit commits some); the reader reads none.
	submits := 0
	waitFor(t, "the stalled event reader to be dropped", func() bool {
		if running.Load() == 0 {
			return true
		}
		if submits < 2000 {
			if _, code := submit(ts, logsJob, nil); code != 201 {
				t.Fatalf("submit: HTTP %d", code)
			}
			submits++
		}
		return false
	})
	t.Logf("event reader dropped after %d submits", submits)
}

// TestServer_SnapshotSaveReaderThatNeverReadsIsDropped: a snapshot download
// whose reader stops reading fails by the write deadline, releasing the
// memdb snapshot it holds.
func TestServer_SnapshotSaveReaderThatNeverReadsIsDropped(t *testing.T) {
	ts := newLiveServer(t, func(c *Config) { c.Logs.WriteTimeout = 300 * time.Millisecond })
	// A state a good deal larger than the socket buffers.
	for i := 0; i < 150; i++ {
		if _, code := submit(ts, logsJob, nil); code != 201 {
			t.Fatalf("submit: HTTP %d", code)
		}
	}
	addr, running := countingServer(t, ts)
	conn := dialStalled(t, addr)
	if _, err := fmt.Fprintf(conn, "GET /v1/operator/snapshot HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the download to start", func() bool { return running.Load() == 1 })
	waitFor(t, "the stalled snapshot download to be dropped", func() bool { return running.Load() == 0 })
}

// proxyGoroutines counts goroutines inside an httputil.ReverseProxy: a
// forwarded request this server is still proxying.
func proxyGoroutines() int {
	buf := make([]byte, 1<<22)
	buf = buf[:runtime.Stack(buf, true)]
	return strings.Count(string(buf), "httputil.(*ReverseProxy).ServeHTTP")
}

// TestCluster_ForwardedLogFollowThatNeverReadsIsDropped: a log follow sent
// to a follower is proxied to the leader; when the client stops reading, the
// follower's proxy must drop it by the write deadline, not keep its
// goroutine and its connection to the leader forever.
func TestCluster_ForwardedLogFollowThatNeverReadsIsDropped(t *testing.T) {
	c := newTestCluster(t, 3, func(cfg *Config) {
		cfg.Logs.WriteTimeout = 300 * time.Millisecond
		cfg.Logs.MaxBytesPerJob = 1 << 30
	})
	leader := c.waitStable(3)
	fol := c.followers()[0]
	lts := &testServer{t: t, srv: leader.srv, web: httptest.NewServer(leader.srv.HTTPHandler())}
	t.Cleanup(lts.web.Close)
	p, code := submit(lts, logsJob, nil)
	if code != 201 {
		t.Fatalf("submit: HTTP %d", code)
	}
	base := proxyGoroutines()
	conn := dialStalled(t, fol.httpAddr)
	if _, err := fmt.Fprintf(conn, "GET /v1/pipelines/%s/logs?follow=true HTTP/1.1\r\nHost: x\r\n\r\n", p.ID); err != nil {
		t.Fatal(err)
	}
	waitForTB(t, "the forwarded follow to start", func() bool { return leader.srv.Logs().Followers() == 1 })
	if n := proxyGoroutines(); n != base+1 {
		t.Fatalf("%d requests being proxied, want %d", n, base+1)
	}
	var pushed int64
	batch := lines(p.JobIDs[0], 256, 1024)
	waitForTB(t, "the follower's proxy to drop the stalled client", func() bool {
		if proxyGoroutines() == base {
			return true
		}
		if pushed < 256<<20 {
			if code, _ := pushLogs(lts, batch); code != 200 {
				t.Fatalf("push: HTTP %d", code)
			}
			pushed += 256 * 1024
		}
		return false
	})
	t.Logf("proxy dropped after %d MiB of log lines", pushed>>20)
}
