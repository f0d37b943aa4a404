package agent

import (
	"io"
	"os"
	"path/filepath"
	"testing"
)

func TestParseFlags_Exec(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agent.json")
	err := os.WriteFile(path, []byte(`{"exec_user": "nobody", "exec_limits": "cgroup", "exec_pids_max": 100, "exec_nofile": 1024, "docker_auth": "/etc/ciplat/docker.json"}`), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := ParseFlags([]string{"-config", path, "-client", "-data-dir", "/tmp/x", "-servers", "127.0.0.1:4680", "-exec-user", "65534:65534", "-exec-nproc", "512"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := ExecConfig{User: "65534:65534", Limits: "cgroup", PidsMax: 100, NoFile: 1024, NProc: 512}
	if cfg.Exec != want {
		t.Fatalf("Exec = %+v, want %+v", cfg.Exec, want)
	}
	if cfg.Docker.AuthFile != "/etc/ciplat/docker.json" {
		t.Errorf("Docker.AuthFile = %q, want the file's docker_auth", cfg.Docker.AuthFile)
	}
	dc := cfg.Exec.driverConfig()
	if dc.User != want.User || dc.Limits != want.Limits || dc.PidsMax != 100 || dc.NoFile != 1024 || dc.NProc != 512 {
		t.Errorf("driver config = %+v", dc)
	}
}
