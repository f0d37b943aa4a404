package httpapi

import (
	"encoding/json"
	"sort"
	"strings"
	"testing"
)

// TestOpenAPI_MatchesRoutes keeps /v1/openapi.json true: every route of the
// router is documented with its method, and nothing else is.
func TestOpenAPI_MatchesRoutes(t *testing.T) {
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(openAPIDoc, &doc); err != nil {
		t.Fatalf("openapi.json is not valid JSON: %v", err)
	}
	var documented, routed []string
	for p, ops := range doc.Paths {
		for m := range ops {
			documented = append(documented, strings.ToUpper(m)+" "+p)
		}
	}
	for _, r := range New(stubBackend{}, Config{}).Routes() {
		routed = append(routed, r.Method+" "+r.Pattern)
	}
	sort.Strings(documented)
	sort.Strings(routed)
	if strings.Join(documented, "\n") != strings.Join(routed, "\n") {
		t.Fatalf("openapi.json and the router differ:\ndocumented:\n  %s\nrouted:\n  %s",
			strings.Join(documented, "\n  "), strings.Join(routed, "\n  "))
	}
}
