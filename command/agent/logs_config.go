package agent

import (
	"flag"
	"fmt"
	"time"

	"github.com/ciplat/ciplat/server"
)

// LogsConfig bounds step logs: what a server keeps per job and for how
// long, how long a log stream may wait on a slow reader, and how much a
// client buffers per allocation while the servers are unreachable. Zero
// values take the defaults.
type LogsConfig struct {
	// JobMaxBytes caps one job's log on the server (default 16 MiB).
	JobMaxBytes int64
	// Retention keeps a job's log this long after its last line once its
	// pipeline ended (default 168h).
	Retention time.Duration
	// WriteTimeout bounds each write of a log stream (default 30s).
	WriteTimeout time.Duration
	// ClientBufferBytes is a client's log buffer per allocation (default 8 MiB).
	ClientBufferBytes int64
}

// logsFileConfig is LogsConfig's part of a -config file.
type logsFileConfig struct {
	LogJobMaxBytes  *int64  `json:"log_job_max_bytes"`
	LogRetention    *string `json:"log_retention"`
	LogWriteTimeout *string `json:"log_write_timeout"`
	LogBufferBytes  *int64  `json:"log_buffer_bytes"`
}

func (fc *logsFileConfig) apply(path string, c *LogsConfig) error {
	if fc.LogJobMaxBytes != nil {
		c.JobMaxBytes = *fc.LogJobMaxBytes
	}
	if fc.LogBufferBytes != nil {
		c.ClientBufferBytes = *fc.LogBufferBytes
	}
	for _, d := range []struct {
		name string
		dst  *time.Duration
		v    *string
	}{{"log_retention", &c.Retention, fc.LogRetention}, {"log_write_timeout", &c.WriteTimeout, fc.LogWriteTimeout}} {
		if d.v == nil {
			continue
		}
		v, err := time.ParseDuration(*d.v)
		if err != nil || v <= 0 {
			return fmt.Errorf("-config %s: %s %q: want a duration such as \"30s\"", path, d.name, *d.v)
		}
		*d.dst = v
	}
	return nil
}

func registerLogFlags(fs *flag.FlagSet, c *LogsConfig) {
	fs.Int64Var(&c.JobMaxBytes, "log-job-max-bytes", c.JobMaxBytes, "server: most bytes of log kept per job; past it one truncation marker line, later lines dropped (default 16 MiB)")
	fs.DurationVar(&c.Retention, "log-retention", c.Retention, "server: keep a job's log this long after its last line once its pipeline ended (default 168h)")
	fs.DurationVar(&c.WriteTimeout, "log-write-timeout", c.WriteTimeout, "server: a streamed response (log stream, event stream, snapshot download, a response forwarded from the leader) whose reader takes longer than this to accept a write is closed (default 30s)")
	fs.Int64Var(&c.ClientBufferBytes, "log-buffer-bytes", c.ClientBufferBytes, "client: log bytes buffered per allocation while the servers are unreachable; past it lines are dropped and counted (default 8 MiB)")
}

// validate checks the log flags once parsed.
func (c *LogsConfig) validate() error {
	if c.JobMaxBytes < 0 || c.ClientBufferBytes < 0 {
		return fmt.Errorf("-log-job-max-bytes and -log-buffer-bytes must not be negative (got %d, %d)", c.JobMaxBytes, c.ClientBufferBytes)
	}
	if c.Retention < 0 || c.WriteTimeout < 0 {
		return fmt.Errorf("-log-retention and -log-write-timeout must not be negative (got %s, %s)", c.Retention, c.WriteTimeout)
	}
	return nil
}

// server is the server's share of c.
func (c *LogsConfig) server() server.LogsConfig {
	return server.LogsConfig{MaxBytesPerJob: c.JobMaxBytes, Retention: c.Retention, WriteTimeout: c.WriteTimeout}
}
