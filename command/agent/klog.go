package agent

import (
	"context"
	"log/slog"
	"sync"

	"k8s.io/klog/v2"
)

// routeKlog sends what client-go logs through klog (to stderr by default)
// to the agent's logger at debug level: its complaints are about streams
// the kubernetes driver closes on purpose ("Copying stdout failed: use of
// closed network connection" when a step is cancelled), and the driver
// reports what matters itself. klog is process-wide, so this happens once.
func routeKlog(log *slog.Logger) {
	klogOnce.Do(func() {
		klog.SetSlogLogger(slog.New(debugHandler{log.Handler()}).With("component", "client-go"))
	})
}

var klogOnce sync.Once

// debugHandler logs every record at debug level through h.
type debugHandler struct{ h slog.Handler }

func (d debugHandler) Enabled(ctx context.Context, _ slog.Level) bool {
	return d.h.Enabled(ctx, slog.LevelDebug)
}

func (d debugHandler) Handle(ctx context.Context, r slog.Record) error {
	r.Level = slog.LevelDebug
	return d.h.Handle(ctx, r)
}

func (d debugHandler) WithAttrs(as []slog.Attr) slog.Handler { return debugHandler{d.h.WithAttrs(as)} }
func (d debugHandler) WithGroup(name string) slog.Handler    { return debugHandler{d.h.WithGroup(name)} }
