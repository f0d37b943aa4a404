package httpapi

import "net/http"

// securityHeaders are set on every response the agent's HTTP listener
// writes through a handler: the API, the UI, errors, 404s and streams.
//
//   - Content-Security-Policy: the UI loads only its own scripts, styles,
//     images and connections (the WebSocket feed is same-origin, which
//     'self' covers), runs no inline script or style and no eval, and may
//     not be framed (clickjacking).
//   - X-Content-Type-Options: nosniff: a log or JSON body is never run as
//     script because a browser guessed its type.
//   - Referrer-Policy: no-referrer: pipeline and job IDs in UI URLs do not
//     leak to other sites.
var securityHeaders = [][2]string{
	{"Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'"},
	{"X-Content-Type-Options", "nosniff"},
	{"Referrer-Policy", "no-referrer"},
}

// SecurityHeaders wraps the agent's whole handler (/v1 and /ui) so every
// response carries securityHeaders. They are set before the wrapped
// handler runs, so handlers that write their own answer (streams, files,
// http.Error) keep them. Responses net/http writes without a handler (a
// malformed request, headers over the limit) and a WebSocket's 101 do not
// carry them.
func SecurityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		setSecurityHeaders(w.Header())
		next.ServeHTTP(w, r)
	})
}

func setSecurityHeaders(h http.Header) {
	for _, kv := range securityHeaders {
		h.Set(kv[0], kv[1])
	}
}

// DropSecurityHeaders removes securityHeaders from a response the leader
// answered to a forwarded request: the follower's own SecurityHeaders has
// set them already, and the proxy would otherwise add them a second time.
func DropSecurityHeaders(h http.Header) {
	for _, kv := range securityHeaders {
		h.Del(kv[0])
	}
}
