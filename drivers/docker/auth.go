package docker

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/distribution/reference"
	"github.com/docker/docker/api/types/registry"
)

// dockerHub is the registry of image references without a registry host
// ("golang:1.26", "library/busybox"), as reference.Domain names it.
const dockerHub = "docker.io"

// registryAuth holds the credentials of a docker config.json (`-docker-auth
// FILE`), by registry host. It is read once, by New, and read-only after.
type registryAuth map[string]registry.AuthConfig

// loadRegistryAuth reads the "auths" of a docker config.json: per
// registry, "auth" (base64 of user:password) or "username" and
// "password", or an "identitytoken". Keys may be a host[:port] or a URL
// ("https://index.docker.io/v1/" is Docker Hub). Credential helpers
// (credsStore, credHelpers) are not run: the file must hold the secrets.
func loadRegistryAuth(path string) (registryAuth, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("docker: registry credentials: %w", err)
	}
	var file struct {
		Auths map[string]struct {
			Auth          string `json:"auth"`
			Username      string `json:"username"`
			Password      string `json:"password"`
			IdentityToken string `json:"identitytoken"`
		} `json:"auths"`
	}
	if err := json.Unmarshal(b, &file); err != nil {
		return nil, fmt.Errorf("docker: registry credentials %s: %v (want a docker config.json: {\"auths\": {\"registry.example.com\": {\"auth\": \"<base64 of user:password>\"}}})", path, err)
	}
	out := registryAuth{}
	for key, a := range file.Auths {
		ac := registry.AuthConfig{Username: a.Username, Password: a.Password, IdentityToken: a.IdentityToken}
		if a.Auth != "" {
			raw, err := base64.StdEncoding.DecodeString(a.Auth)
			user, pass, ok := strings.Cut(string(raw), ":")
			if err != nil || !ok {
				return nil, fmt.Errorf("docker: registry credentials %s: auths[%q].auth: want base64 of user:password", path, key)
			}
			ac.Username, ac.Password = user, pass
		}
		if ac.Username == "" && ac.IdentityToken == "" {
			return nil, fmt.Errorf("docker: registry credentials %s: auths[%q]: no auth, username or identitytoken (credential helpers are not supported: put the credentials in the file)", path, key)
		}
		host := registryHost(key)
		ac.ServerAddress = key
		out[host] = ac
	}
	return out, nil
}

// registryHost turns a config.json key into the host[:port] that
// reference.Domain returns for images of that registry.
func registryHost(key string) string {
	h := key
	if i := strings.Index(h, "://"); i >= 0 {
		h = h[i+3:]
	}
	h, _, _ = strings.Cut(h, "/")
	switch h {
	case "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com":
		return dockerHub
	}
	return h
}

// header returns the X-Registry-Auth value for pulling ref: the encoded
// credentials of ref's registry, or "" when there are none (an anonymous
// pull).
func (a registryAuth) header(ref string) (string, error) {
	if len(a) == 0 {
		return "", nil
	}
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return "", fmt.Errorf("docker: image %q: %w", ref, err)
	}
	ac, ok := a[reference.Domain(named)]
	if !ok {
		return "", nil
	}
	return registry.EncodeAuthConfig(ac)
}
