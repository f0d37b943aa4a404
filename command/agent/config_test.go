package agent

import (
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseFlags_ConfigFileThenFlags(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agent.json")
	err := os.WriteFile(path, []byte(`{
  "server": true,
  "data_dir": "/var/lib/ciplat",
  "bootstrap_expect": 3,
  "node_name": "s1",
  "join": ["10.0.0.2", "10.0.0.3"],
  "retry_join": ["10.0.0.9:4682"],
  "serf_addr": "127.0.0.1:0",
  "dead_server_cleanup": "10m",
  "raft": {"snapshot_threshold": 100, "snapshot_interval": "30s", "heartbeat_timeout": "500ms"}
}`), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := ParseFlags([]string{"-config", path, "-node", "s9", "-join", "10.0.0.7", "-client", "-raft-snapshot-threshold", "200"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.Server || !cfg.Client || cfg.DataDir != "/var/lib/ciplat" || cfg.BootstrapExpect != 3 {
		t.Fatalf("file values lost: %+v", cfg)
	}
	if cfg.NodeName != "s9" || !reflect.DeepEqual(cfg.Join, []string{"10.0.0.7"}) {
		t.Fatalf("flags must override the file: node %q join %v", cfg.NodeName, cfg.Join)
	}
	if !reflect.DeepEqual(cfg.RetryJoin, []string{"10.0.0.9:4682"}) || cfg.SerfAddr != "127.0.0.1:0" {
		t.Fatalf("retry_join %v serf %q", cfg.RetryJoin, cfg.SerfAddr)
	}
	if cfg.RaftSnapshotThreshold != 200 || cfg.RaftSnapshotInterval != 30*time.Second ||
		cfg.RaftHeartbeatTimeout != 500*time.Millisecond || cfg.DeadServerCleanup != 10*time.Minute {
		t.Fatalf("raft settings: %+v", cfg)
	}
}

func TestParseFlags_Errors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	_ = os.WriteFile(bad, []byte("{\n  \"server\": true,\n  \"bootstrap\": 3\n}"), 0o600)
	broken := filepath.Join(dir, "broken.json")
	_ = os.WriteFile(broken, []byte("{\n  \"server\": true,,\n}"), 0o600)
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"-client", "-data-dir", dir, "-servers", "x", "-bootstrap-expect", "3"}, "server flags"},
		{[]string{"-dev", "-bootstrap-expect", "3"}, "single server"},
		{[]string{"-server", "-data-dir", dir, "-bootstrap-expect", "-1"}, "bootstrap-expect"},
		{[]string{"-dev", "-idempotency-ttl", "0s"}, "invalid -idempotency-ttl 0s"},
		{[]string{"-dev", "-snapshot-max-bytes", "-1"}, "invalid -snapshot-max-bytes -1"},
		{[]string{"-config", bad}, `unknown field "bootstrap"`},
		{[]string{"-config", broken}, "line 2"},
		{[]string{"-config", filepath.Join(dir, "missing.json")}, "read -config"},
	}
	for _, c := range cases {
		_, err := ParseFlags(c.args, io.Discard)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: error %v, want it to mention %q", c.args, err, c.want)
		}
	}
}

func TestParseFlags_DevUnchanged(t *testing.T) {
	cfg, err := ParseFlags([]string{"-dev"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.Server || !cfg.Client || cfg.BootstrapExpect != 0 || !reflect.DeepEqual(cfg.Drivers, []string{"exec"}) {
		t.Fatalf("-dev: %+v", cfg)
	}
	cfg, err = ParseFlags([]string{"-dev", "-driver", "exec,mock"}, io.Discard)
	if err != nil || !reflect.DeepEqual(cfg.Drivers, []string{"exec", "mock"}) {
		t.Fatalf("-driver exec,mock: %v %v", cfg.Drivers, err)
	}
}

func TestParseFlags_IdempotencyTTL(t *testing.T) {
	tests := []struct {
		args []string
		want time.Duration
	}{
		{[]string{"-dev"}, 24 * time.Hour},
		{[]string{"-dev", "-idempotency-ttl", "90m"}, 90 * time.Minute},
		{[]string{"-dev", "-idempotency-ttl", "1ns"}, time.Nanosecond},
	}
	for _, tt := range tests {
		cfg, err := ParseFlags(tt.args, io.Discard)
		if err != nil || cfg.IdempotencyTTL != tt.want {
			t.Errorf("%v: IdempotencyTTL = %v, %v; want %v", tt.args, cfg.IdempotencyTTL, err, tt.want)
		}
	}
	var help strings.Builder
	_, _ = ParseFlags([]string{"-h"}, &help)
	if !strings.Contains(help.String(), "-idempotency-ttl") || !strings.Contains(help.String(), "(default 24h0m0s)") {
		t.Errorf("agent -help does not document -idempotency-ttl with its default:\n%s", help.String())
	}
}
