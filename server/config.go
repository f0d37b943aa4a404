package server

import (
	"log/slog"
	"time"
)

// Config is what a server agent needs. Zero values take the defaults noted.
type Config struct {
	// NodeName names this server in Raft (its server ID); default "server-1".
	NodeName string
	// DataDir holds raft/ (raft-boltdb log and stable store, snapshots) and
	// logs/ (step output). Required.
	DataDir string
	// RaftAddr is the TCP address Raft binds; port 0 picks a free port.
	RaftAddr string
	// Bootstrap makes this server bootstrap a one-server cluster when its data
	// dir holds no Raft state yet (-dev, or -bootstrap-expect 1).
	Bootstrap bool
	// Dev shortens Raft timeouts for a single local server.
	Dev bool
	// SchedulerWorkers is how many scheduler goroutines the leader runs; default 2.
	SchedulerWorkers int
	// SchedulerAlgorithm is "binpack" (default) or "spread".
	SchedulerAlgorithm string
	// Now is the clock stamped into Raft entries; nil means time.Now.
	Now func() time.Time
	// Logger receives the server's logs; nil means slog.Default().
	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	if c.NodeName == "" {
		c.NodeName = "server-1"
	}
	if c.RaftAddr == "" {
		c.RaftAddr = "127.0.0.1:4681"
	}
	if c.SchedulerWorkers <= 0 {
		c.SchedulerWorkers = 2
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}
