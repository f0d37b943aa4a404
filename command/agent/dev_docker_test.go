package agent

import (
	"context"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/ciplat/ciplat/api"
)

// TestParseFlags_DevDetectDocker: -dev looks for Docker only when the
// drivers were left at their default.
func TestParseFlags_DevDetectDocker(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want bool
	}{
		{[]string{"-dev"}, true},
		{[]string{"-dev", "-driver", "exec"}, false},
		{[]string{"-dev", "-driver", "exec,docker"}, false},
		{[]string{"-server", "-client", "-data-dir", "/d", "-bootstrap-expect", "1"}, false},
	} {
		cfg, err := ParseFlags(tt.args, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.DetectDocker != tt.want {
			t.Errorf("%v: DetectDocker %v, want %v", tt.args, cfg.DetectDocker, tt.want)
		}
	}
}

// devAgent starts `ciplat agent -dev` in process (free ports, a temp data
// dir) and returns it with the drivers its node reported.
func devAgent(t *testing.T) (*Agent, map[string]*api.DriverInfo) {
	t.Helper()
	cfg, err := ParseFlags([]string{"-dev", "-http-addr", "127.0.0.1:0", "-data-dir", t.TempDir(), "-node", "dev1"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Shutdown)
	c, err := api.NewClient(&api.Config{Address: "http://" + a.HTTPAddr()})
	if err != nil {
		t.Fatal(err)
	}
	nodes, _, err := c.Nodes(context.Background(), nil)
	if err != nil || len(nodes) != 1 {
		t.Fatalf("nodes %v, %v", nodes, err)
	}
	return a, nodes[0].Drivers
}

// TestAgent_DevEnablesDocker: a -dev agent on a host whose Docker engine
// answers enables the docker driver, its node reports docker healthy, and
// the banner line says so. (Issue 12: -dev enabled only exec, so jobs with
// an image ran on the host.)
func TestAgent_DevEnablesDocker(t *testing.T) {
	if out, err := exec.Command("docker", "version", "--format", "{{.Server.Version}}").CombinedOutput(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true and Docker is not usable: %v: %s", err, out)
		}
		t.Skipf("Docker not usable, skipping (CI=true makes this a failure): %v: %s", err, out)
	}
	a, drivers := devAgent(t)
	if d := drivers["docker"]; d == nil || !d.Healthy {
		t.Fatalf("node drivers %v: want docker healthy", drivers)
	}
	if d := drivers["exec"]; d == nil || !d.Healthy {
		t.Errorf("node drivers %v: want exec still there", drivers)
	}
	if a.dockerLine == "" || a.dockerLine[:7] != "enabled" {
		t.Errorf("banner line %q", a.dockerLine)
	}
}

// TestAgent_DevWithoutDocker: with no engine answering, a -dev agent starts
// with exec alone, at once, and says why in its banner line.
func TestAgent_DevWithoutDocker(t *testing.T) {
	t.Setenv("DOCKER_HOST", "unix://"+filepath.Join(t.TempDir(), "no-docker.sock"))
	a, drivers := devAgent(t)
	if drivers["docker"] != nil || drivers["exec"] == nil {
		t.Fatalf("node drivers %v: want exec only", drivers)
	}
	if a.dockerLine == "" || a.dockerLine[:11] != "not enabled" {
		t.Errorf("banner line %q", a.dockerLine)
	}
}
