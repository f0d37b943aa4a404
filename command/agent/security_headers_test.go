package agent_test

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestAgent_SecurityHeaders: every kind of answer the agent's listener
// gives through a handler carries the security headers: API reads and
// errors, 404 and 405 under /v1, the UI's files and its 404, the redirect
// from /, a stream, and the WebSocket route refusing a plain GET.
func TestAgent_SecurityHeaders(t *testing.T) {
	a, c := devAgent(t)
	// A -dev agent returns from New once ready.
	if r, err := c.Ready(context.Background()); err != nil || !r.Ready || r.Role != "leader" {
		t.Fatalf("dev agent not ready after New: %+v %v", r, err)
	}
	base := "http://" + a.HTTPAddr()
	want := map[string]string{
		"Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'",
		"X-Content-Type-Options":  "nosniff",
		"Referrer-Policy":         "no-referrer",
	}
	client := &http.Client{
		Timeout:       20 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	for _, tc := range []struct {
		method, path string
		code         int
	}{
		{"GET", "/v1/status/leader", 200},
		{"GET", "/v1/status/ready", 200},
		{"GET", "/v1/pipelines", 200},
		{"GET", "/v1/evaluations?status=nonsense", 400},
		{"GET", "/v1/pipelines/nosuch", 404},
		{"GET", "/v1/nosuch", 404},
		{"DELETE", "/v1/pipelines", 405},
		{"GET", "/v1/ws", 426},
		{"GET", "/v1/metrics", 200},
		{"GET", "/v1/openapi.json", 200},
		{"GET", "/ui/", 200},
		{"GET", "/ui/app.js", 200},
		{"GET", "/ui/style.css", 200},
		{"GET", "/ui/nosuch.js", 404},
		{"GET", "/", 302},
		{"GET", "/v1/event/stream", 200}, // a stream: headers checked, then closed
	} {
		req, _ := http.NewRequest(tc.method, base+tc.path, nil)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", tc.method, tc.path, err)
		}
		if strings.HasPrefix(tc.path, "/v1/event/stream") {
			_, _ = bufio.NewReader(resp.Body).ReadByte()
		}
		resp.Body.Close()
		if resp.StatusCode != tc.code {
			t.Errorf("%s %s: HTTP %d, want %d", tc.method, tc.path, resp.StatusCode, tc.code)
		}
		for k, v := range want {
			if got := resp.Header.Values(k); len(got) != 1 || got[0] != v {
				t.Errorf("%s %s: %s = %q, want [%q]", tc.method, tc.path, k, got, v)
			}
		}
	}
	// The agent's listener counts go to the server's metrics.
	resp, err := client.Get(base + "/v1/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, m := range []string{"\nciplat_http_connections ", "\nciplat_http_connections_max 4096\n", "\nciplat_http_connections_rejected_total 0\n"} {
		if !strings.Contains(string(body), m) {
			t.Errorf("/v1/metrics lacks %q", strings.TrimSpace(m))
		}
	}
}
