package docker_test

import (
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/docker/docker/api/types/registry"

	"github.com/ciplat/ciplat/drivers"
	"github.com/ciplat/ciplat/drivers/docker"
)

// pullRecorder is an engine API that has no image, records the
// X-Registry-Auth of each pull and fails it.
type pullRecorder struct {
	mu    sync.Mutex
	pulls map[string]string // fromImage → X-Registry-Auth
}

func (p *pullRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := regexp.MustCompile(`^/v[0-9.]+`).ReplaceAllString(r.URL.Path, "")
	switch {
	case path == "/_ping":
		w.Header().Set("Api-Version", "1.47")
		w.Write([]byte("OK"))
	case strings.HasPrefix(path, "/images/") && strings.HasSuffix(path, "/json"):
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		w.Write([]byte(`{"message":"No such image"}`))
	case path == "/images/create" && r.Method == http.MethodPost:
		p.mu.Lock()
		p.pulls[r.URL.Query().Get("fromImage")] = r.Header.Get("X-Registry-Auth")
		p.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"status":"Pulling"}` + "\n" + `{"errorDetail":{"message":"denied: test registry"},"error":"denied: test registry"}` + "\n"))
	default:
		http.Error(w, `{"message":"not in this fake"}`, http.StatusNotImplemented)
	}
}

// TestDriver_AuthFile: a pull sends the credentials of the image's
// registry from the config.json, Docker Hub's for an image without a
// registry host, and none for a registry the file does not name.
func TestDriver_AuthFile(t *testing.T) {
	rec := &pullRecorder{pulls: map[string]string{}}
	engine := httptest.NewServer(rec)
	defer engine.Close()
	file := filepath.Join(t.TempDir(), "config.json")
	userPass := base64.StdEncoding.EncodeToString([]byte("ci:s3cret:with-colon"))
	err := os.WriteFile(file, []byte(`{"auths": {
		"registry.example.com:5000": {"auth": "`+userPass+`"},
		"https://index.docker.io/v1/": {"username": "hubuser", "password": "hubpass"},
		"ghcr.io": {"identitytoken": "tok-1"}
	}}`), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	d, err := docker.New(docker.Config{Host: "tcp://" + engine.Listener.Addr().String(), AuthFile: file, Retries: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()

	for _, tc := range []struct {
		image, from string
		want        *registry.AuthConfig
	}{
		{"registry.example.com:5000/team/app:1", "registry.example.com:5000/team/app",
			&registry.AuthConfig{Username: "ci", Password: "s3cret:with-colon", ServerAddress: "registry.example.com:5000"}},
		{"golang:1.26", "docker.io/library/golang",
			&registry.AuthConfig{Username: "hubuser", Password: "hubpass", ServerAddress: "https://index.docker.io/v1/"}},
		{"ghcr.io/org/tool", "ghcr.io/org/tool", &registry.AuthConfig{IdentityToken: "tok-1", ServerAddress: "ghcr.io"}},
		{"quay.io/org/other", "quay.io/org/other", nil},
	} {
		_, err := d.CreateWorker(t.Context(), drivers.WorkerConfig{ID: "auth-test", Image: tc.image})
		if err == nil || !strings.Contains(err.Error(), "denied: test registry") {
			t.Errorf("%s: CreateWorker err %v, want the registry's refusal", tc.image, err)
		}
		rec.mu.Lock()
		hdr, pulled := rec.pulls[tc.from]
		rec.mu.Unlock()
		if !pulled {
			t.Errorf("%s: no pull of %s; pulls %v", tc.image, tc.from, rec.pulls)
			continue
		}
		if tc.want == nil {
			if hdr != "" {
				t.Errorf("%s: X-Registry-Auth %q, want none for a registry the file does not name", tc.image, hdr)
			}
			continue
		}
		got, err := registry.DecodeAuthConfig(hdr)
		if err != nil {
			t.Errorf("%s: X-Registry-Auth %q: %v", tc.image, hdr, err)
			continue
		}
		if *got != *tc.want {
			t.Errorf("%s: X-Registry-Auth = %+v, want %+v", tc.image, *got, *tc.want)
		}
	}

	for name, content := range map[string]string{
		"not-json.json": "auths: {}",
		"bad-auth.json": `{"auths": {"r.example": {"auth": "bm8tY29sb24="}}}`, // "no-colon"
		"helper.json":   `{"auths": {"r.example": {}}, "credsStore": "desktop"}`,
	} {
		p := filepath.Join(t.TempDir(), name)
		os.WriteFile(p, []byte(content), 0o600)
		if _, err := docker.New(docker.Config{AuthFile: p}); err == nil || !strings.Contains(err.Error(), p) {
			t.Errorf("%s: New err %v, want an error naming the file", name, err)
		}
	}
	if _, err := docker.New(docker.Config{AuthFile: filepath.Join(t.TempDir(), "missing.json")}); err == nil {
		t.Error("New with a missing auth file succeeded")
	}
}
