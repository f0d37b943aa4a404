package agent

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseFlags_Logs(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agent.json")
	if err := os.WriteFile(path, []byte(`{"log_retention": "24h", "log_buffer_bytes": 1024, "log_job_max_bytes": 99}`), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := ParseFlags([]string{"-dev", "-config", path, "-log-job-max-bytes", "4096", "-log-write-timeout", "5s"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := LogsConfig{JobMaxBytes: 4096, Retention: 24 * time.Hour, WriteTimeout: 5 * time.Second, ClientBufferBytes: 1024}
	if cfg.Logs != want {
		t.Fatalf("logs config %+v, want %+v", cfg.Logs, want)
	}
	if s := cfg.Logs.server(); s.MaxBytesPerJob != 4096 || s.Retention != 24*time.Hour || s.WriteTimeout != 5*time.Second {
		t.Fatalf("server logs config %+v", s)
	}
	for _, args := range [][]string{{"-dev", "-log-buffer-bytes", "-1"}, {"-dev", "-log-retention", "-1h"}} {
		if _, err := ParseFlags(args, io.Discard); err == nil || !strings.Contains(err.Error(), args[1]) {
			t.Fatalf("%v: err %v, want one naming %s", args, err, args[1])
		}
	}
}
