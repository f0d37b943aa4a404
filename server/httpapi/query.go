package httpapi

import (
	"net/http"
	"strconv"
	"time"
)

// maxWait bounds a blocking query's wait.
const maxWait = 10 * time.Minute

// QueryOpts are a read's blocking-query parameters.
type QueryOpts struct {
	Index uint64
	Wait  time.Duration
}

// ParseQuery reads ?index=N&wait=D (wait defaults to 5m, at most 10m).
func ParseQuery(r *http.Request) (QueryOpts, error) {
	var q QueryOpts
	if v := r.URL.Query().Get("index"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return q, BadRequest("invalid index %q: want a Raft index (a non-negative integer)", v)
		}
		q.Index = n
	}
	q.Wait = 5 * time.Minute
	if v := r.URL.Query().Get("wait"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return q, BadRequest("invalid wait %q: want a duration such as 30s", v)
		}
		q.Wait = min(d, maxWait)
	}
	return q, nil
}

// SetIndex writes X-Ciplat-Index (at least 1).
func SetIndex(w http.ResponseWriter, idx uint64) {
	w.Header().Set("X-Ciplat-Index", strconv.FormatUint(max(idx, 1), 10))
}

// parseBool reads a boolean query parameter (absent: false).
func parseBool(r *http.Request, name string) (bool, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, BadRequest("invalid %s %q: want true or false", name, v)
	}
	return b, nil
}

// isStale reports whether a read asked to be answered by any server
// (?stale or ?stale=true).
func isStale(r *http.Request) bool {
	q := r.URL.Query()
	if !q.Has("stale") {
		return false
	}
	v := q.Get("stale")
	if v == "" {
		return true
	}
	b, err := strconv.ParseBool(v)
	return err == nil && b
}
