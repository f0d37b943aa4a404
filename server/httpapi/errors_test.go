package httpapi

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestWriteError_RetryAfter: an HTTPError marked RetryAfter (a write the
// servers did not apply, such as one aborted by a snapshot restore) is
// answered with its code and Retry-After; one not marked has no header.
func TestWriteError_RetryAfter(t *testing.T) {
	for _, tc := range []struct {
		err  *HTTPError
		want string
	}{
		{&HTTPError{Code: http.StatusServiceUnavailable, Msg: "x", RetryAfter: true}, "1"},
		{&HTTPError{Code: http.StatusBadRequest, Msg: "x"}, ""},
	} {
		rec := httptest.NewRecorder()
		WriteError(rec, tc.err)
		if rec.Code != tc.err.Code || rec.Header().Get("Retry-After") != tc.want {
			t.Errorf("%+v: HTTP %d Retry-After %q, want %d %q", tc.err, rec.Code, rec.Header().Get("Retry-After"), tc.err.Code, tc.want)
		}
	}
}
