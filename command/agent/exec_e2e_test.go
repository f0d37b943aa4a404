package agent_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestE2E_ExecUserAndLimits runs a pipeline through a dev agent started
// with -exec-user nobody and -exec-limits cgroup: the step runs as uid
// 65534 in a workspace it owns, and a step that outgrows the job's memory
// is killed with a line saying so. Needs root (CI runs as root).
func TestE2E_ExecUserAndLimits(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true: this test needs root (setuid, cgroups), running as uid %d", os.Geteuid())
		}
		t.Skipf("needs root for -exec-user and cgroups (uid %d); runs under CI=true", os.Geteuid())
	}
	dataDir := t.TempDir()
	// The operator's part: let nobody through the data dir and the test's
	// temp dir above it (both 0700). The agent opens its client dir.
	for _, d := range []string{dataDir, filepath.Dir(dataDir)} {
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	ag := startAgentArgs(t, "agent", "-dev", "-data-dir", dataDir, "-http-addr", "127.0.0.1:0", "-log-level", "warn",
		"-exec-user", "nobody", "-exec-limits", "cgroup")
	spec := `name: hardened
jobs:
  who:
    steps: [ 'echo "uid=$(id -u) owner=$(stat -c %u .)"' ]
  hog:
    resources: { memory: 32Mi }
    steps: [ 'x=$(head -c 100000000 /dev/zero | tr "\0" a); echo survived' ]
`
	file := t.TempDir() + "/hardened.yml"
	if err := os.WriteFile(file, []byte(spec), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := cli(t, ag.addr, "pipeline", "run", file)
	if code == 0 {
		t.Fatalf("pipeline run exited 0, want the hog job to fail\n%s\n%s", out, errOut)
	}
	all := out + errOut
	for _, want := range []string{"uid=65534 owner=65534", "memory limit 32 MiB exceeded"} {
		if !strings.Contains(all, want) {
			t.Errorf("output lacks %q:\nstdout:\n%s\nstderr:\n%s\nagent:\n%s", want, out, errOut, ag.out.String())
		}
	}
	if strings.Contains(all, "survived") {
		t.Errorf("the hog step survived its memory limit:\n%s", all)
	}
}
