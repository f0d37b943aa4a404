package httpapi

import (
	"fmt"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strings"
)

// Browser safety: the agent answers anyone who can reach its port, and a
// web page the developer opens can reach a port on localhost. Two guards,
// on every route of the table (browserGuard, first in chain), with or
// without ACLs:
//
//   - CSRF: a write (any method but GET, HEAD, OPTIONS) made by a browser
//     must come from the agent's own origin. A request whose Sec-Fetch-Site
//     is neither same-origin nor none, or whose Origin is not the agent's
//     (its host[:port] is the request's Host, or one of Config.OwnAddrs),
//     is refused with 403. A write whose body has a type an HTML form or a
//     no-cors fetch can send without a CORS preflight (text/plain,
//     application/x-www-form-urlencoded, multipart/form-data), or a body
//     with no Content-Type at all (a no-cors fetch of a Blob), is refused
//     with 415, so even a browser that sends neither Origin nor
//     Sec-Fetch-* cannot post a spec. Requests without Origin and
//     Sec-Fetch-* (curl, the api client, the CLI, client agents) pass when
//     they name a JSON, YAML or binary type.
//   - DNS rebinding: when the HTTP listener is bound to a loopback address
//     (Config.LoopbackBind), a request whose Host is not a loopback name
//     (localhost, 127.0.0.0/8, ::1) or one of Config.OwnAddrs is refused
//     with 403: a page of evil.example that re-resolved its name to
//     127.0.0.1 is same-origin to the browser, but its Host says
//     evil.example.
//
// Reads are left to the browser's same-origin policy (the API sets no CORS
// headers, so another origin cannot read an answer, and a non-simple
// request is stopped at its preflight); the WebSocket feed checks Origin
// itself (feed_client.go). Outside the table, the agent serves only the
// UI's static files and JSON 404/405 answers, which change nothing and
// hold nothing secret.

// formContentTypes are the body types a browser sends cross-origin without
// a preflight (the CORS-safelisted Content-Type values).
var formContentTypes = map[string]bool{
	"text/plain":                        true,
	"application/x-www-form-urlencoded": true,
	"multipart/form-data":               true,
}

// browserGuard refuses cross-origin writes, form-typed bodies and, on a
// loopback bind, foreign Host headers (DNS rebinding); see above.
func (a *API) browserGuard(rt Route, next HandlerFunc) HandlerFunc {
	write := rt.Method != http.MethodGet && rt.Method != http.MethodHead && rt.Method != http.MethodOptions
	return func(w http.ResponseWriter, r *http.Request) (any, error) {
		if a.cfg.LoopbackBind {
			if err := a.checkHost(r); err != nil {
				return nil, err
			}
		}
		if write {
			if err := a.checkOrigin(r); err != nil {
				return nil, err
			}
			if err := checkBodyType(r); err != nil {
				return nil, err
			}
		}
		return next(w, r)
	}
}

// checkHost refuses a Host that is neither a loopback name nor one of the
// agent's own addresses.
func (a *API) checkHost(r *http.Request) error {
	host := hostOnly(r.Host)
	if isLoopbackName(host) {
		return nil
	}
	for _, own := range a.cfg.OwnAddrs {
		if strings.EqualFold(host, hostOnly(own)) {
			return nil
		}
	}
	return &HTTPError{Code: http.StatusForbidden, Msg: fmt.Sprintf(
		"request refused: Host %q is not a loopback name or an address of this agent, and the agent listens on loopback only (a DNS rebinding attack looks like this); use http://localhost:PORT or http://127.0.0.1:PORT", r.Host)}
}

// checkOrigin refuses a browser request made from another origin.
func (a *API) checkOrigin(r *http.Request) error {
	if s := r.Header.Get("Sec-Fetch-Site"); s != "" && s != "same-origin" && s != "none" {
		return &HTTPError{Code: http.StatusForbidden, Msg: fmt.Sprintf(
			"cross-origin write refused: Sec-Fetch-Site is %q, and writes are accepted only from this agent's own origin (same-origin) or from programs that send no Origin", s)}
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return nil
	}
	if a.ownOrigin(origin, r) {
		return nil
	}
	return &HTTPError{Code: http.StatusForbidden, Msg: fmt.Sprintf(
		"cross-origin write refused: Origin %s is not this agent's origin (http://%s)", origin, r.Host)}
}

// ownOrigin reports whether origin names the agent: an http(s) origin
// whose host[:port] is the request's Host or one of OwnAddrs (default
// ports aside). The scheme is not compared with the request's, so the UI
// behind a TLS-terminating proxy that keeps the Host still works.
func (a *API) ownOrigin(origin string, r *http.Request) bool {
	u, err := url.Parse(origin)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Path != "" {
		return false // "null" (a sandboxed frame, a file: page) included
	}
	got := stripDefaultPort(u.Host, u.Scheme)
	reqScheme := "http"
	if r.TLS != nil {
		reqScheme = "https"
	}
	if strings.EqualFold(got, stripDefaultPort(r.Host, reqScheme)) {
		return true
	}
	for _, own := range a.cfg.OwnAddrs {
		if strings.EqualFold(got, stripDefaultPort(own, u.Scheme)) {
			return true
		}
	}
	return false
}

// checkBodyType refuses a write whose body a form could have sent.
func checkBodyType(r *http.Request) error {
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		if r.ContentLength == 0 {
			return nil // no body: a cancel, a leave, a DELETE
		}
		return &HTTPError{Code: http.StatusUnsupportedMediaType, Msg: "request body without a Content-Type refused (a browser can send one cross-origin): send Content-Type: application/json, application/yaml or application/octet-stream (curl: -H 'Content-Type: application/json')"}
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		mt = strings.ToLower(strings.TrimSpace(strings.SplitN(ct, ";", 2)[0]))
	}
	if formContentTypes[mt] {
		return &HTTPError{Code: http.StatusUnsupportedMediaType, Msg: fmt.Sprintf(
			"Content-Type %s refused: a web page can send it from another origin without asking (CSRF); send application/json, application/yaml or application/octet-stream (curl -d and --data-binary send application/x-www-form-urlencoded: add -H 'Content-Type: application/json')", mt)}
	}
	return nil
}

// isLoopbackName reports whether host (no port) names this machine's
// loopback interface: localhost, 127.0.0.0/8 or ::1.
func isLoopbackName(host string) bool {
	if strings.EqualFold(strings.TrimSuffix(host, "."), "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// hostOnly is host[:port] without the port and the IPv6 brackets.
func hostOnly(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return h
	}
	return strings.TrimSuffix(strings.TrimPrefix(hostport, "["), "]")
}

// stripDefaultPort drops scheme's default port from host[:port].
func stripDefaultPort(hostport, scheme string) string {
	h, p, err := net.SplitHostPort(hostport)
	if err != nil {
		return hostport
	}
	if (scheme == "http" && p == "80") || (scheme == "https" && p == "443") {
		if strings.Contains(h, ":") {
			return "[" + h + "]"
		}
		return h
	}
	return hostport
}
