package httpapi

import (
	_ "embed"
	"net/http"
)

// openAPIDoc is served at /v1/openapi.json; TestOpenAPI_MatchesRoutes keeps
// it true to the route table.
//
//go:embed openapi.json
var openAPIDoc []byte

func (a *API) handleOpenAPI(w http.ResponseWriter, r *http.Request) (any, error) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(openAPIDoc)
	return Streamed{}, nil
}
