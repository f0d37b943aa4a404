package agent

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// serveHTTP serves h on a free loopback port the way the agent does
// (HTTPConfig.httpServer behind connCapListener) and returns its address.
func serveHTTP(t *testing.T, c HTTPConfig, h http.Handler) string {
	t.Helper()
	addr, _ := serveHTTPCapped(t, c, h)
	return addr
}

// serveHTTPCapped is serveHTTP that also returns the capped listener, to
// read its counts.
func serveHTTPCapped(t *testing.T, c HTTPConfig, h http.Handler) (string, *connCapListener) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hc := c.withDefaults()
	srv := hc.httpServer(h)
	capped := newConnCapListener(ln, c.MaxConns)
	go func() { _ = srv.Serve(capped) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String(), capped
}

// rawGet sends one GET on conn and reads the answer.
func rawGet(t *testing.T, conn net.Conn, br *bufio.Reader, path string) *http.Response {
	t.Helper()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path); err != nil {
		t.Fatalf("write: %v", err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("read answer: %v", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

var okHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") })

// TestConnCapListener: with -http-max-conns 2, two keep-alive connections
// are served; a third is answered 503 with Retry-After and a JSON error
// (not left hanging in the accept queue); once one closes, a new one is
// served. The refusal is counted (GET /v1/metrics shows it).
func TestConnCapListener(t *testing.T) {
	addr, capped := serveHTTPCapped(t, HTTPConfig{MaxConns: 2}, okHandler)
	var open []net.Conn
	for i := 0; i < 2; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if resp := rawGet(t, c, bufio.NewReader(c), "/"); resp.StatusCode != 200 {
			t.Fatalf("connection %d (at the cap): HTTP %d", i+1, resp.StatusCode)
		}
		open = append(open, c)
	}
	c3, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c3.Close()
	resp := rawGet(t, c3, bufio.NewReader(c3), "/")
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" ||
		resp.Header.Get("Content-Type") != "application/json" || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Fatalf("connection 3 (cap+1): HTTP %d %v; want 503 JSON with Retry-After and the security headers", resp.StatusCode, resp.Header)
	}
	if st := capped.stats(); st.Open != 2 || st.Max != 2 || st.Rejected != 1 {
		t.Fatalf("stats after one refusal = %+v, want 2 open, max 2, 1 rejected", st)
	}

	open[0].Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		resp := rawGet(t, c, bufio.NewReader(c), "/")
		c.Close()
		if resp.StatusCode == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a closed connection's slot was not given back: HTTP %d", resp.StatusCode)
		}
	}
}

// TestHTTPConfig_ReadTimeoutEndsWithTheRequest: -http-read-timeout cuts off
// a request whose body never comes, but not a request that was read and
// whose answer takes longer (a blocking query, a stream).
func TestHTTPConfig_ReadTimeoutEndsWithTheRequest(t *testing.T) {
	const readTimeout = 300 * time.Millisecond
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.ReadAll(r.Body); err != nil {
			http.Error(w, err.Error(), http.StatusRequestTimeout)
			return
		}
		// A long answer: three read timeouts.
		select {
		case <-r.Context().Done():
			return
		case <-time.After(3 * readTimeout):
		}
		_, _ = io.WriteString(w, "answered")
	})
	addr := serveHTTP(t, HTTPConfig{ReadTimeout: readTimeout}, h)

	for _, method := range []string{"GET", "POST"} {
		body := ""
		if method == "POST" {
			body = "{}"
		}
		req, _ := http.NewRequest(method, "http://"+addr+"/", strings.NewReader(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s outliving the read timeout: %v", method, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != "answered" {
			t.Fatalf("%s outliving the read timeout: HTTP %d %q, want answered", method, resp.StatusCode, b)
		}
	}

	// A body announced and never sent: the connection is answered or
	// closed soon after the read timeout, not held open.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, _ = io.WriteString(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadAll(c); err != nil {
		t.Fatalf("slow body: the connection was held open: %v", err)
	}
}

// TestHTTPConfig_IdleTimeout: a keep-alive connection idle longer than
// -http-idle-timeout is closed by the agent.
func TestHTTPConfig_IdleTimeout(t *testing.T) {
	addr := serveHTTP(t, HTTPConfig{IdleTimeout: 200 * time.Millisecond}, okHandler)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	rawGet(t, c, br, "/")
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("idle keep-alive: read %v, want EOF (closed by the agent)", err)
	}
}

// TestHTTPConfig_MaxHeaderBytes: headers at the limit are read; over it
// (net/http's 4096 bytes of slack included) the answer is 431.
func TestHTTPConfig_MaxHeaderBytes(t *testing.T) {
	const limit = 8 << 10
	addr := serveHTTP(t, HTTPConfig{MaxHeaderBytes: limit}, okHandler)
	get := func(headerBytes int) int {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		head := "GET / HTTP/1.1\r\nHost: x\r\nX-Pad: "
		pad := headerBytes - len(head) - len("\r\n\r\n")
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		_, _ = io.WriteString(c, head+strings.Repeat("a", pad)+"\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("%d header bytes: %v", headerBytes, err)
		}
		return resp.StatusCode
	}
	if code := get(limit); code != 200 {
		t.Fatalf("headers at the limit: HTTP %d, want 200", code)
	}
	if code := get(limit + 4096 + 1); code != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("headers over the limit: HTTP %d, want 431", code)
	}
}

// TestParseFlags_HTTP: the flags set the bounds; nonsense is refused.
func TestParseFlags_HTTP(t *testing.T) {
	cfg, err := ParseFlags([]string{"-dev", "-http-max-conns", "7", "-ws-max-clients", "3", "-http-read-timeout", "5s", "-forward-timeout", "4s"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HTTP.MaxConns != 7 || cfg.HTTP.MaxWSClients != 3 || cfg.HTTP.ReadTimeout != 5*time.Second || cfg.HTTP.ForwardTimeout != 4*time.Second ||
		cfg.HTTP.IdleTimeout != defaultHTTPConfig().IdleTimeout {
		t.Fatalf("HTTP config %+v", cfg.HTTP)
	}
	file := filepath.Join(t.TempDir(), "agent.json")
	if err := os.WriteFile(file, []byte(`{"http_max_conns": 9, "forward_timeout": "3s", "ws_max_clients": 4}`), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err = ParseFlags([]string{"-config", file, "-dev", "-ws-max-clients", "5"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HTTP.MaxConns != 9 || cfg.HTTP.ForwardTimeout != 3*time.Second || cfg.HTTP.MaxWSClients != 5 {
		t.Fatalf("config file then flags: %+v", cfg.HTTP)
	}
	for _, bad := range [][]string{{"-http-read-timeout", "0s"}, {"-http-max-conns", "-1"}, {"-http-max-header-bytes", "0"}} {
		if _, err := ParseFlags(append([]string{"-dev"}, bad...), io.Discard); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}
