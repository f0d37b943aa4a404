package server

import _ "embed"

// openAPIDoc is served at /v1/openapi.json; TestOpenAPI_MatchesRoutes keeps
// it true to the router.
//
//go:embed openapi.json
var openAPIDoc []byte
