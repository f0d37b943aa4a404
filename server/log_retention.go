package server

import "time"

// Log store defaults (LogsConfig).
const (
	DefaultLogRetention     = 7 * 24 * time.Hour
	DefaultLogSweepInterval = 10 * time.Minute
	DefaultLogWriteTimeout  = 30 * time.Second
)

// LogsConfig bounds the server's step logs. Zero values take the defaults.
type LogsConfig struct {
	// MaxBytesPerJob caps one job's log file (default 16 MiB): past it one
	// marker line is written and later lines are dropped, counted.
	MaxBytesPerJob int64
	// Retention is how long a job's log is kept after its last line once
	// its pipeline has ended or is gone (default 7 days). ciplat has no
	// pipeline garbage collection yet: when it has, logs go with the
	// pipeline and this remains the bound for pipelines kept long.
	Retention time.Duration
	// SweepInterval is how often the retention sweep runs (default 10m).
	SweepInterval time.Duration
	// WriteTimeout bounds every write and flush of a log stream (default
	// 30s): a reader that stops reading is dropped after it.
	WriteTimeout time.Duration
}

func (c *LogsConfig) setDefaults() {
	if c.MaxBytesPerJob <= 0 {
		c.MaxBytesPerJob = DefaultLogMaxBytesPerJob
	}
	if c.Retention <= 0 {
		c.Retention = DefaultLogRetention
	}
	if c.SweepInterval <= 0 {
		c.SweepInterval = DefaultLogSweepInterval
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = DefaultLogWriteTimeout
	}
}

// sweepLogsLoop runs sweepLogs every SweepInterval until shutdown. Every
// server sweeps its own log dir (logs are not replicated), from its own
// replicated state: nothing goes through Raft.
func (s *Server) sweepLogsLoop() {
	defer s.wg.Done()
	t := time.NewTicker(s.cfg.Logs.SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-s.shutdownCtx.Done():
			return
		case <-t.C:
			s.sweepLogs()
		}
	}
}

// sweepLogs removes the logs last written more than Retention ago (by the
// server's clock, Config.Now) whose job is gone, or whose pipeline is gone
// or has ended. It returns how many it removed.
func (s *Server) sweepLogs() int {
	st := s.State()
	n, err := s.logs.Sweep(s.cfg.Now().Add(-s.cfg.Logs.Retention), func(jobID string) bool {
		j, err := st.JobByID(nil, jobID)
		if err != nil || j == nil {
			return err != nil // keep on a read error, drop an unknown job's
		}
		p, err := st.PipelineByID(nil, j.PipelineID)
		if err != nil {
			return true
		}
		return p != nil && !p.State.Terminal()
	})
	if err != nil {
		s.log.Warn("log retention sweep", "err", err)
	}
	if n > 0 {
		s.log.Info("log retention removed job logs", "jobs", n)
	}
	return n
}

// writeLogMetrics adds the log store's counters to GET /v1/metrics.
func (s *Server) writeLogMetrics(p promWriter) {
	p.one("ciplat_logs_dropped_lines_total", "counter", "Log lines dropped because their job's log reached -log-job-max-bytes.", float64(s.logs.DroppedLines()))
	p.one("ciplat_logs_followers", "gauge", "Log streams following jobs or pipelines now.", float64(s.logs.Followers()))
}
