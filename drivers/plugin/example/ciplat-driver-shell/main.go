// Command ciplat-driver-shell is an example driver plugin: the "shell"
// driver runs each step with /bin/sh in a private workspace directory on
// the host, through the exec driver. It shows everything a plugin needs:
// a drivers.Driver, and plugin.Serve in main.
//
// Build it into the agent's plugin directory:
//
//	go build -o /etc/ciplat/plugins/ciplat-driver-shell ./drivers/plugin/example/ciplat-driver-shell
//
// Workspaces live in the directory the host passes in
// CIPLAT_PLUGIN_STATE_DIR (see plugin.StateDir), so a restarted plugin
// finds its workers again.
package main

import (
	"context"
	"log/slog"
	"os"

	"github.com/ciplat/ciplat/drivers"
	"github.com/ciplat/ciplat/drivers/exec"
	"github.com/ciplat/ciplat/drivers/plugin"
)

func main() {
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	plugin.Serve(&shell{Driver: exec.New(exec.Config{Root: plugin.StateDir("shell"), Logger: log})})
}

// shell is the exec driver under the name "shell": every handle it returns
// says so. Everything else, including the concurrency rules, is exec's.
type shell struct {
	*exec.Driver
}

var _ drivers.Driver = (*shell)(nil)

// Name returns "shell".
func (s *shell) Name() string { return "shell" }

// CreateWorker creates an exec worker and names the driver "shell".
func (s *shell) CreateWorker(ctx context.Context, cfg drivers.WorkerConfig) (*drivers.WorkerHandle, error) {
	h, err := s.Driver.CreateWorker(ctx, cfg)
	if h != nil {
		h.Driver = s.Name()
	}
	return h, err
}

// ListWorkers lists the exec workers and names the driver "shell".
func (s *shell) ListWorkers(ctx context.Context) ([]*drivers.WorkerHandle, error) {
	hs, err := s.Driver.ListWorkers(ctx)
	for _, h := range hs {
		h.Driver = s.Name()
	}
	return hs, err
}
