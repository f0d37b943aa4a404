package gossip

import (
	"context"
	"log"
	"log/slog"
	"strings"
)

// newStdLogger adapts memberlist's standard-library logger to slog:
// "[WARN] memberlist: ..." becomes a Warn record. memberlist's INFO lines
// (every join and failure) go to Debug, its DEBUG lines below it.
func newStdLogger(l *slog.Logger) *log.Logger {
	return log.New(levelWriter{l}, "", 0)
}

type levelWriter struct{ l *slog.Logger }

var levels = []struct {
	prefix string
	level  slog.Level
}{
	{"[DEBUG]", slog.LevelDebug - 4},
	{"[INFO]", slog.LevelDebug},
	{"[WARN]", slog.LevelWarn},
	{"[ERR]", slog.LevelError},
}

func (w levelWriter) Write(p []byte) (int, error) {
	line := strings.TrimRight(string(p), "\r\n")
	level := slog.LevelInfo
	for _, lv := range levels {
		if i := strings.Index(line, lv.prefix); i >= 0 {
			line = strings.TrimSpace(line[i+len(lv.prefix):])
			level = lv.level
			break
		}
	}
	w.l.Log(context.Background(), level, line)
	return len(p), nil
}
