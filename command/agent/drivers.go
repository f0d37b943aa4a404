package agent

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"

	"github.com/ciplat/ciplat/drivers"
	"github.com/ciplat/ciplat/drivers/docker"
	"github.com/ciplat/ciplat/drivers/mock"
	"github.com/ciplat/ciplat/drivers/plugin"
)

// builtinDrivers are the drivers compiled into this binary; -driver picks
// among them, and -plugin-dir adds external ones.
var builtinDrivers = []string{"exec", "docker", "mock"}

// buildDrivers is the client's explicit driver registry (no init()
// side effects): the -driver list plus every plugin found in -plugin-dir.
// The returned func closes what needs closing (engine clients, plugin
// processes) after the client has stopped.
func buildDrivers(cfg *Config, clientDir string, log *slog.Logger) (map[string]drivers.Driver, func(), error) {
	reg := map[string]drivers.Driver{}
	var closers []func()
	closeAll := func() {
		for _, c := range closers {
			c()
		}
	}
	for _, name := range cfg.Drivers {
		switch name {
		case "exec":
			reg[name] = cfg.Exec.newDriver(clientDir, log) // exec_config.go
		case "mock":
			reg[name] = mock.New(mock.Config{})
		case "docker":
			d, err := docker.New(docker.Config{NodeID: cfg.NodeName, Logger: log, AuthFile: cfg.Docker.AuthFile})
			if err != nil {
				closeAll()
				return nil, nil, fmt.Errorf("docker driver: %w", err)
			}
			reg[name] = d
			closers = append(closers, func() { _ = d.Close() })
		default:
			closeAll()
			return nil, nil, fmt.Errorf("unknown driver %q: this build has %v, plus plugins from -plugin-dir", name, builtinDrivers)
		}
	}
	if cfg.PluginDir != "" {
		found, err := plugin.Discover(cfg.PluginDir, plugin.Config{StateDir: filepath.Join(clientDir, "plugins"), Logger: log})
		if err != nil {
			closeAll()
			return nil, nil, fmt.Errorf("plugins in %s: %w", cfg.PluginDir, err)
		}
		for name, d := range found {
			if slices.Contains(builtinDrivers, name) || reg[name] != nil {
				closeAll()
				_ = d.Close()
				return nil, nil, fmt.Errorf("plugin driver %q in %s clashes with a built-in driver", name, cfg.PluginDir)
			}
			reg[name] = d
			closers = append(closers, func() { _ = d.Close() })
		}
	}
	if len(reg) == 0 {
		return nil, nil, fmt.Errorf("no driver enabled: give -driver (%v) or -plugin-dir", builtinDrivers)
	}
	return reg, closeAll, nil
}
