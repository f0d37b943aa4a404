package httpapi

import (
	"fmt"
	"net/http"
	"time"
)

// Middleware wraps a route's handler. The chain (chain, below) is the one
// place every route passes through: an ACL check added there covers the
// whole table.
type Middleware func(rt Route, next HandlerFunc) HandlerFunc

// chain is the middleware every route is served through, outermost first.
func (a *API) chain() []Middleware {
	return []Middleware{
		a.browserGuard, // browser.go: CSRF and DNS rebinding
		largeBodyDeadline,
		a.leaderOnly,
		limitBody,
	}
}

// Handler returns the /v1 API. Unknown paths under /v1 get 404 and known
// paths with another method 405, both as JSON errors.
func (a *API) Handler() http.Handler {
	mux := http.NewServeMux()
	mws := a.chain()
	paths := map[string][]string{}
	for _, rt := range a.Routes() {
		h := rt.Handler
		for i := len(mws) - 1; i >= 0; i-- {
			h = mws[i](rt, h)
		}
		mux.HandleFunc(rt.Method+" "+rt.Pattern, func(w http.ResponseWriter, r *http.Request) {
			out, err := h(w, r)
			if err != nil {
				WriteError(w, err)
				return
			}
			if _, ok := out.(Streamed); ok {
				return
			}
			WriteJSON(w, http.StatusOK, out)
		})
		paths[rt.Pattern] = append(paths[rt.Pattern], rt.Method)
	}
	for p, methods := range paths {
		allowed := methods
		mux.HandleFunc(p, func(w http.ResponseWriter, r *http.Request) {
			for _, m := range allowed {
				w.Header().Add("Allow", m)
			}
			WriteError(w, &HTTPError{Code: http.StatusMethodNotAllowed, Msg: fmt.Sprintf("method %s not allowed on %s", r.Method, r.URL.Path)})
		})
	}
	mux.HandleFunc("/v1/", func(w http.ResponseWriter, r *http.Request) {
		WriteError(w, &HTTPError{Code: http.StatusNotFound, Msg: "no such route: " + r.URL.Path})
	})
	return mux
}

// largeBodyDeadline gives a LargeBody route LargeBodyReadTimeout to upload.
func largeBodyDeadline(rt Route, next HandlerFunc) HandlerFunc {
	if !rt.LargeBody {
		return next
	}
	return func(w http.ResponseWriter, r *http.Request) (any, error) {
		_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(LargeBodyReadTimeout))
		return next(w, r)
	}
}

// leaderOnly sends writes, and reads without ?stale, to the leader
// (Backend.ForwardToLeader), and marks how current a local answer is.
func (a *API) leaderOnly(rt Route, next HandlerFunc) HandlerFunc {
	if rt.Kind == KindLocal {
		return next
	}
	return func(w http.ResponseWriter, r *http.Request) (any, error) {
		stale := rt.Kind == KindRead && isStale(r)
		if !stale && a.b.ForwardToLeader(w, r, rt) {
			return Streamed{}, nil
		}
		a.b.SetConsistency(w)
		return next(w, r)
	}
}

// limitBody caps the request body at the route's MaxBody (maxBodyBytes).
func limitBody(rt Route, next HandlerFunc) HandlerFunc {
	limit := rt.MaxBody
	if limit == 0 {
		limit = maxBodyBytes
	}
	return func(w http.ResponseWriter, r *http.Request) (any, error) {
		if r.Body != nil {
			r.Body = http.MaxBytesReader(w, r.Body, limit)
		}
		return next(w, r)
	}
}
