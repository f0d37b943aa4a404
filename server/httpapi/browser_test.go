package httpapi

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// agentHost is the Host the requests of these tests are sent to.
const agentHost = "127.0.0.1:4680"

// browserReq is a request to rt with the Host of the agent and, when body
// is not empty, the given Content-Type; hdr adds headers.
func browserReq(rt Route, body, contentType string, hdr map[string]string) *http.Request {
	path := strings.NewReplacer("{id}", "x").Replace(rt.Pattern)
	req := httptest.NewRequest(rt.Method, path, strings.NewReader(body))
	req.Host = agentHost
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	return req
}

func isWrite(rt Route) bool {
	return rt.Method != http.MethodGet && rt.Method != http.MethodHead && rt.Method != http.MethodOptions
}

// TestBrowserGuard_RefusesCrossSiteWrites sends every state-changing route
// of the table, through the real handler, what a page of another origin
// can send without a preflight: each is refused before any handler runs.
func TestBrowserGuard_RefusesCrossSiteWrites(t *testing.T) {
	a := New(stubBackend{}, Config{})
	h := a.Handler()
	cases := []struct {
		name        string
		body, ctype string
		hdr         map[string]string
		code        int
		msg         string
	}{
		{"cross-site fetch", `{}`, "application/json", map[string]string{"Sec-Fetch-Site": "cross-site"}, 403, `Sec-Fetch-Site is "cross-site"`},
		{"same-site page on another port", `{}`, "application/json", map[string]string{"Sec-Fetch-Site": "same-site"}, 403, `Sec-Fetch-Site is "same-site"`},
		{"foreign Origin", `{}`, "application/json", map[string]string{"Origin": "http://evil.example"}, 403, "Origin http://evil.example is not this agent's origin"},
		{"other port's Origin", `{}`, "application/json", map[string]string{"Origin": "http://127.0.0.1:8000"}, 403, "Origin http://127.0.0.1:8000"},
		{"null Origin", `{}`, "application/json", map[string]string{"Origin": "null"}, 403, "Origin null"},
		{"text/plain", "name: p", "text/plain", nil, 415, "Content-Type text/plain refused"},
		{"text/plain with charset", "name: p", "text/plain;charset=UTF-8", nil, 415, "Content-Type text/plain refused"},
		{"form", "a=b", "application/x-www-form-urlencoded", nil, 415, "application/x-www-form-urlencoded refused"},
		{"multipart form", "--x--", "multipart/form-data; boundary=x", nil, 415, "multipart/form-data refused"},
		{"empty form", "", "application/x-www-form-urlencoded", nil, 415, "refused"},
		{"untyped body", "name: p", "", nil, 415, "without a Content-Type"},
	}
	n := 0
	for _, rt := range a.Routes() {
		if !isWrite(rt) {
			continue
		}
		n++
		for _, tc := range cases {
			t.Run(rt.Method+" "+rt.Pattern+"/"+tc.name, func(t *testing.T) {
				w := httptest.NewRecorder()
				h.ServeHTTP(w, browserReq(rt, tc.body, tc.ctype, tc.hdr))
				var e struct{ Error string }
				if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil {
					t.Fatalf("answer is not a JSON error: %q", w.Body)
				}
				if w.Code != tc.code || !strings.Contains(e.Error, tc.msg) {
					t.Fatalf("got %d %q, want %d naming %q", w.Code, e.Error, tc.code, tc.msg)
				}
			})
		}
	}
	if n < 10 {
		t.Fatalf("only %d state-changing routes in the table", n)
	}
}

// TestBrowserGuard_Passes checks what the guard lets through: the UI's own
// writes (same origin), programs that send no Origin, bodyless writes, and
// every read whatever its headers.
func TestBrowserGuard_Passes(t *testing.T) {
	a := New(stubBackend{}, Config{OwnAddrs: []string{"ci.internal:4680"}})
	writes := []struct {
		name        string
		body, ctype string
		hdr         map[string]string
	}{
		{"same-origin UI", `{}`, "application/json", map[string]string{"Sec-Fetch-Site": "same-origin", "Origin": "http://" + agentHost}},
		{"same-origin YAML", "name: p", "application/yaml", map[string]string{"Sec-Fetch-Site": "same-origin", "Origin": "http://" + agentHost}},
		{"typed in the address bar", `{}`, "application/json", map[string]string{"Sec-Fetch-Site": "none"}},
		{"https origin through a proxy keeping Host", `{}`, "application/json", map[string]string{"Origin": "https://" + agentHost}},
		{"configured address", `{}`, "application/json", map[string]string{"Origin": "http://ci.internal:4680"}},
		{"curl JSON", `{}`, "application/json", nil},
		{"api client YAML", "name: p", "application/yaml", nil},
		{"snapshot upload", "x", "application/octet-stream", nil},
		{"no body", "", "", nil},
	}
	for _, rt := range a.Routes() {
		for _, tc := range writes {
			if !isWrite(rt) {
				break
			}
			t.Run(rt.Method+" "+rt.Pattern+"/"+tc.name, func(t *testing.T) {
				assertPasses(t, a, rt, browserReq(rt, tc.body, tc.ctype, tc.hdr))
			})
		}
		if !isWrite(rt) {
			t.Run(rt.Method+" "+rt.Pattern+"/cross-site read", func(t *testing.T) {
				assertPasses(t, a, rt, browserReq(rt, "", "text/plain", map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "http://evil.example"}))
			})
		}
	}
}

// assertPasses runs req through the guard of rt and fails unless it
// reached the next handler.
func assertPasses(t *testing.T, a *API, rt Route, req *http.Request) {
	t.Helper()
	reached := false
	next := func(http.ResponseWriter, *http.Request) (any, error) { reached = true; return nil, nil }
	if _, err := a.browserGuard(rt, next)(httptest.NewRecorder(), req); err != nil || !reached {
		t.Fatalf("refused: %v", err)
	}
}

// TestBrowserGuard_Host is the DNS rebinding check: on a loopback bind
// only loopback names and the agent's own addresses are accepted as Host.
func TestBrowserGuard_Host(t *testing.T) {
	rt := Route{Method: "GET", Pattern: "/v1/pipelines"}
	for _, tc := range []struct {
		host     string
		loopback bool
		ok       bool
	}{
		{"127.0.0.1:4680", true, true},
		{"localhost:4680", true, true},
		{"LOCALHOST", true, true},
		{"127.1.2.3:4680", true, true},
		{"[::1]:4680", true, true},
		{"ci.internal:4680", true, true}, // OwnAddrs
		{"ci.internal", true, true},
		{"evil.example:4680", true, false},
		{"localhost.evil.example:4680", true, false},
		{"192.168.1.5:4680", true, false},
		{"0.0.0.0:4680", true, false},
		{"", true, false},
		{"evil.example:4680", false, true}, // not a loopback bind: no check
	} {
		a := New(stubBackend{}, Config{LoopbackBind: tc.loopback, OwnAddrs: []string{"ci.internal:4680"}})
		req := httptest.NewRequest(rt.Method, rt.Pattern, nil)
		req.Host = tc.host
		_, err := a.browserGuard(rt, func(http.ResponseWriter, *http.Request) (any, error) { return nil, nil })(httptest.NewRecorder(), req)
		if tc.ok != (err == nil) {
			t.Errorf("Host %q (loopback bind %v): err %v, want ok=%v", tc.host, tc.loopback, err, tc.ok)
		}
		var he *HTTPError
		if err != nil && (!errors.As(err, &he) || he.Code != http.StatusForbidden || !strings.Contains(he.Msg, "Host \""+tc.host+"\"")) {
			t.Errorf("Host %q: %v, want a 403 naming the Host", tc.host, err)
		}
	}
}

// TestBrowserGuard_HostThroughHandler: a rebound page's request gets the
// JSON 403 from the real handler, on reads and writes alike.
func TestBrowserGuard_HostThroughHandler(t *testing.T) {
	a := New(stubBackend{}, Config{LoopbackBind: true})
	h := a.Handler()
	for _, rt := range a.Routes() {
		req := browserReq(rt, `{}`, "application/json", nil)
		req.Host = "rebind.evil.example:4680"
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusForbidden || !strings.Contains(w.Body.String(), "rebind.evil.example:4680") {
			t.Errorf("%s %s: %d %s", rt.Method, rt.Pattern, w.Code, w.Body)
		}
	}
}
