package docker

import (
	"fmt"
	"slices"
	"strings"

	"github.com/ciplat/ciplat/drivers"
)

// containerEnv is the container's own environment, over the image's:
// drivers.WorkerEnv (the ciplat variables, then the worker's env, later
// entries winning). Sorted, so a container's env is reproducible. It
// rejects names an environment cannot carry, naming the culprit.
func containerEnv(workspace string, cfg drivers.WorkerConfig) ([]string, error) {
	if err := checkEnv(cfg.Env, "worker env"); err != nil {
		return nil, err
	}
	return envList(drivers.WorkerEnv(cfg, workspace)), nil
}

// stepEnv is what a step's exec adds over the container's environment.
func stepEnv(step drivers.StepConfig) ([]string, error) {
	if err := checkEnv(step.Env, fmt.Sprintf("env of step %q", step.Name)); err != nil {
		return nil, err
	}
	return envList(step.Env), nil
}

// checkEnv checks each name and value of env; where says which map a bad
// entry came from.
func checkEnv(env map[string]string, where string) error {
	for k, v := range env {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			return fmt.Errorf("docker: %s: variable name %q: want a non-empty name without '=' or NUL", where, k)
		}
		if strings.ContainsRune(v, 0) {
			return fmt.Errorf("docker: %s: value of %s contains a NUL byte, which an environment cannot carry", where, k)
		}
	}
	return nil
}

// envList renders env as sorted NAME=value entries.
func envList(env map[string]string) []string {
	out := make([]string, 0, len(env))
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	slices.Sort(out)
	return out
}
