package ui

import (
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"path"
	"regexp"
	"strings"
	"testing"
)

func TestHandler_ServesFiles(t *testing.T) {
	srv := httptest.NewServer(Handler("/ui/"))
	defer srv.Close()
	for file, ctype := range map[string]string{
		"":                  "text/html",
		"app.js":            "text/javascript",
		"style.css":         "text/css",
		"views/pipeline.js": "text/javascript",
	} {
		resp, err := http.Get(srv.URL + "/ui/" + file)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), ctype) || len(body) == 0 {
			t.Errorf("/ui/%s: HTTP %d %q (%d bytes), want 200 %s", file, resp.StatusCode, resp.Header.Get("Content-Type"), len(body), ctype)
		}
	}
}

// TestStatic_ImportsResolve checks that every ES module import and every
// file index.html names is embedded: there is no build step to catch a
// typo, and a browser only reports it at run time.
func TestStatic_ImportsResolve(t *testing.T) {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		t.Fatal(err)
	}
	importRe := regexp.MustCompile(`(?m)^\s*import\s+(?:[^"']+\s+from\s+)?["']([^"']+)["']`)
	refRe := regexp.MustCompile(`(?:src|href)="([^"#:]+)"`)
	err = fs.WalkDir(sub, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(sub, p)
		if err != nil {
			return err
		}
		var refs [][]string
		switch path.Ext(p) {
		case ".js":
			refs = importRe.FindAllStringSubmatch(string(b), -1)
		case ".html":
			refs = refRe.FindAllStringSubmatch(string(b), -1)
		}
		for _, m := range refs {
			if !strings.HasPrefix(m[1], ".") && path.Ext(p) == ".js" {
				t.Errorf("%s imports %q: only relative imports of embedded files (no CDN)", p, m[1])
				continue
			}
			target := path.Clean(path.Join(path.Dir(p), m[1]))
			if _, err := fs.Stat(sub, target); err != nil {
				t.Errorf("%s refers to %s, which is not embedded", p, m[1])
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestStatic_CSPClean: the agent serves the UI under
// "Content-Security-Policy: default-src 'self'", which refuses inline
// scripts and styles, style attributes, eval and data: URLs. A browser
// would only say so in its console; this catches the usual forms early
// (the browser test in command/agent catches the rest).
func TestStatic_CSPClean(t *testing.T) {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		t.Fatal(err)
	}
	bad := map[string]*regexp.Regexp{
		".html": regexp.MustCompile(`<style|<script>|<script(?:\s+type="module")?>|\sstyle=|\son[a-z]+=|(?:src|href)="data:|javascript:`),
		".js":   regexp.MustCompile(`\beval\(|new Function\(|setAttribute\(\s*["']style|style:\s*[` + "`" + `"']|innerHTML\s*=|(?:src|href)\s*[:=]\s*["'` + "`" + `]data:`),
	}
	err = fs.WalkDir(sub, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		re := bad[path.Ext(p)]
		if re == nil {
			return nil
		}
		b, err := fs.ReadFile(sub, p)
		if err != nil {
			return err
		}
		for _, m := range re.FindAllString(string(b), -1) {
			t.Errorf("%s: %q is refused by the agent's Content-Security-Policy", p, m)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
