package agent

import (
	"context"
	"flag"
	"log/slog"
	"slices"
	"time"

	"github.com/ciplat/ciplat/drivers/docker"
)

// devDockerTimeout bounds the ping with which -dev looks for a Docker
// engine: an agent without one must still start at once.
const devDockerTimeout = 2 * time.Second

// devDetectDocker reports whether -dev should look for a Docker engine:
// -dev was given and the drivers were left at their default (no -driver
// flag, no "drivers" in the -config file). A developer who chose drivers
// gets exactly those.
func devDetectDocker(fs *flag.FlagSet, cfg *Config) bool {
	if !cfg.Dev || !slices.Equal(cfg.Drivers, []string{"exec"}) {
		return false
	}
	given := false
	fs.Visit(func(f *flag.Flag) { given = given || f.Name == "driver" })
	return !given
}

// detectDocker pings the Docker engine (DOCKER_HOST or the default socket)
// once, within devDockerTimeout. When it answers, the docker driver is
// added to the agent's drivers, so that jobs with an image run in
// containers in -dev as in production. It returns the line the startup
// banner shows either way.
func (a *Agent) detectDocker() string {
	d, err := docker.New(docker.Config{NodeID: a.cfg.NodeName, Logger: slog.New(slog.DiscardHandler), Retries: -1, CallTimeout: devDockerTimeout})
	if err != nil {
		return "not enabled (" + err.Error() + "); jobs with an image stay pending"
	}
	defer func() { _ = d.Close() }()
	ctx, cancel := context.WithTimeout(context.Background(), devDockerTimeout)
	defer cancel()
	fp := d.Fingerprint(ctx)
	if !fp.Healthy {
		a.log.Info("-dev: no Docker engine answers; jobs with an image stay pending (give them driver: exec to run on the host)", "reason", fp.Reason)
		return "not enabled: no engine answers; jobs with an image stay pending"
	}
	if !slices.Contains(a.cfg.Drivers, "docker") {
		a.cfg.Drivers = append(a.cfg.Drivers, "docker")
	}
	a.log.Info("-dev: a Docker engine answers; the docker driver is enabled", "version", fp.Version)
	return "enabled (engine " + fp.Version + " answers); jobs with an image run in containers"
}
