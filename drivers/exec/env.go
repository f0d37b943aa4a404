package exec

import (
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"

	"github.com/ciplat/ciplat/drivers"
)

// defaultPath is the PATH steps get when the agent has none.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// stepEnv builds a step's environment as RunStep documents it: the base,
// then drivers.WorkerEnv (the ciplat variables, then the worker's env),
// then the step's, later entries winning. The result is sorted, so a step's
// env is reproducible. It rejects names a process environment cannot
// carry, naming the culprit.
func stepEnv(workspace string, cfg drivers.WorkerConfig, step drivers.StepConfig) ([]string, error) {
	env := map[string]string{
		"PATH": os.Getenv("PATH"),
		"HOME": workspace,
	}
	if env["PATH"] == "" {
		env["PATH"] = defaultPath
	}
	if tmp := os.Getenv("TMPDIR"); tmp != "" {
		env["TMPDIR"] = tmp
	}
	if err := checkEnv(cfg.Env, "worker env"); err != nil {
		return nil, err
	}
	maps.Copy(env, drivers.WorkerEnv(cfg, workspace))
	where := fmt.Sprintf("env of step %q", step.Name)
	if err := checkEnv(step.Env, where); err != nil {
		return nil, err
	}
	maps.Copy(env, step.Env)
	out := make([]string, 0, len(env))
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	slices.Sort(out)
	return out, nil
}

// checkEnv checks each name and value of env; where says which map a bad
// entry came from.
func checkEnv(env map[string]string, where string) error {
	for k, v := range env {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			return fmt.Errorf("exec: %s: variable name %q: want a non-empty name without '=' or NUL", where, k)
		}
		if strings.ContainsRune(v, 0) {
			return fmt.Errorf("exec: %s: value of %s contains a NUL byte, which an environment cannot carry", where, k)
		}
	}
	return nil
}
