package drivers

import (
	"maps"
	"strconv"
)

// The variables ciplat gives every step. The client and the drivers build
// them here only: AttemptEnv (the client) and WorkerEnv (each driver).
const (
	EnvCI         = "CI"                 // "true"
	EnvJobID      = "CIPLAT_JOB_ID"      // WorkerConfig.JobID
	EnvJobName    = "CIPLAT_JOB_NAME"    // WorkerConfig.JobName
	EnvPipelineID = "CIPLAT_PIPELINE_ID" // WorkerConfig.PipelineID
	EnvWorkspace  = "CIPLAT_WORKSPACE"   // the workspace path as the step sees it
	EnvAllocID    = "CIPLAT_ALLOC_ID"    // WorkerConfig.ID, the allocation
	EnvAttempt    = "CIPLAT_ATTEMPT"     // the job attempt, from 1
)

// jobVars are the variables that name cfg's job.
func jobVars(cfg WorkerConfig) map[string]string {
	return map[string]string{
		EnvJobID:      cfg.JobID,
		EnvJobName:    cfg.JobName,
		EnvPipelineID: cfg.PipelineID,
	}
}

// WorkerEnv is what a driver sets for every step of worker cfg, over its
// base (exec: PATH and HOME; a container: its image's env) and under the
// step's own env: CI=true, CIPLAT_JOB_ID, CIPLAT_JOB_NAME,
// CIPLAT_PIPELINE_ID (from cfg) and CIPLAT_WORKSPACE (workspace, the path
// as the step sees it), then cfg.Env, later entries winning. It does not
// check the names; the caller owns the map.
func WorkerEnv(cfg WorkerConfig, workspace string) map[string]string {
	env := jobVars(cfg)
	env[EnvCI] = "true"
	env[EnvWorkspace] = workspace
	maps.Copy(env, cfg.Env)
	return env
}

// AttemptEnv is the WorkerConfig.Env the client gives worker cfg of a job
// attempt: the job's env, then CIPLAT_ALLOC_ID (cfg.ID), CIPLAT_ATTEMPT and
// the variables that name the job (as WorkerEnv sets them), later entries
// winning, so a job's env cannot change them (it can change CI and
// CIPLAT_WORKSPACE). jobEnv is not modified.
func AttemptEnv(cfg WorkerConfig, attempt int, jobEnv map[string]string) map[string]string {
	env := maps.Clone(jobEnv)
	if env == nil {
		env = map[string]string{}
	}
	env[EnvAttempt] = strconv.Itoa(attempt)
	env[EnvAllocID] = cfg.ID
	maps.Copy(env, jobVars(cfg))
	return env
}
