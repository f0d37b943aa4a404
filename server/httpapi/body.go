package httpapi

import (
	"encoding/json"
	"net/http"
	"strings"
)

// decodeBody decodes a JSON request body into out; unknown fields and bad
// JSON are 400, a body over the route's limit 413.
func decodeBody(r *http.Request, out any) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(out); err != nil {
		if strings.Contains(err.Error(), "http: request body too large") {
			return err
		}
		return BadRequest("invalid JSON body: %v", err)
	}
	return nil
}
