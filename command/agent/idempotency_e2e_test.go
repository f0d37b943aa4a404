package agent_test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var submittedRe = regexp.MustCompile(`==> Pipeline \S+ submitted: (\S+)`)

// TestE2E_PipelineRunIdempotencyKey runs `ciplat pipeline run
// -idempotency-key` against `ciplat agent -dev -idempotency-ttl 1h`: a retry
// of the same file gets the first pipeline, another key a new one, another
// file with the key is refused with the server's words (exit 1), and a
// malformed key is a usage error (exit 2).
func TestE2E_PipelineRunIdempotencyKey(t *testing.T) {
	ag := startAgentArgs(t, "agent", "-dev", "-data-dir", t.TempDir(), "-http-addr", "127.0.0.1:0",
		"-log-level", "warn", "-idempotency-ttl", "1h")
	write := func(name, body string) string {
		path := filepath.Join(t.TempDir(), name)
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	spec := write("ci.yml", "name: ci\njobs:\n  a: { steps: [ 'true' ] }\n")
	other := write("other.yml", "name: other\njobs:\n  b: { steps: [ 'true' ] }\n")
	run := func(key, file string) (string, string, int) {
		return cli(t, ag.addr, "pipeline", "run", "-detach", "-idempotency-key", key, file)
	}
	idOf := func(out, errOut string, code int) string {
		t.Helper()
		m := submittedRe.FindStringSubmatch(out)
		if code != 0 || m == nil {
			t.Fatalf("exit %d, stdout %q, stderr %q; want a submitted pipeline", code, out, errOut)
		}
		return m[1]
	}

	first := idOf(run("nightly-1", spec))
	if again := idOf(run("nightly-1", spec)); again != first {
		t.Fatalf("retry with the same key and file: pipeline %s, want %s", again, first)
	}
	if next := idOf(run("nightly-2", spec)); next == first {
		t.Fatalf("another key gave the first pipeline %s", first)
	}

	_, errOut, code := run("nightly-1", other)
	want := fmt.Sprintf(`Idempotency-Key "nightly-1" was used for a different request (pipeline %s); use a new key`, first)
	if code != 1 || !strings.Contains(errOut, want) {
		t.Fatalf("other file, same key: exit %d, stderr %q; want 1 and %q", code, errOut, want)
	}

	_, errOut, code = run(strings.Repeat("k", 129), spec)
	if code != 2 || !strings.Contains(errOut, "Error: invalid -idempotency-key: Idempotency-Key is 129 characters long") {
		t.Fatalf("long key: exit %d, stderr %q; want 2 and a usage error about the key", code, errOut)
	}
}
