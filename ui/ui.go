// Package ui serves ciplat's web UI: plain ES modules and CSS embedded in
// the binary with go:embed, no build step.
package ui

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:embed static
var static embed.FS

// Handler serves the UI under the prefix it is mounted at (e.g. /ui/).
func Handler(prefix string) http.Handler {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	return http.StripPrefix(prefix, http.FileServerFS(sub))
}
