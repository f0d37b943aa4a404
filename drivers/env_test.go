package drivers

import (
	"maps"
	"testing"
)

// TestWorkerEnv: ciplat's variables, then the worker's env over them.
func TestWorkerEnv(t *testing.T) {
	cfg := WorkerConfig{ID: "a1", JobID: "j1", JobName: "build", PipelineID: "p1",
		Env: map[string]string{"FOO": "bar", "CI": "false"}}
	got := WorkerEnv(cfg, "/workspace")
	want := map[string]string{"CI": "false", "CIPLAT_JOB_ID": "j1", "CIPLAT_JOB_NAME": "build",
		"CIPLAT_PIPELINE_ID": "p1", "CIPLAT_WORKSPACE": "/workspace", "FOO": "bar"}
	if !maps.Equal(got, want) {
		t.Errorf("WorkerEnv = %v, want %v", got, want)
	}
	got["X"] = "y"
	if _, ok := cfg.Env["X"]; ok {
		t.Error("WorkerEnv's map is cfg.Env")
	}
}

// TestAttemptEnv: the job's env, then the attempt's variables over it; the
// job's env is not modified.
func TestAttemptEnv(t *testing.T) {
	cfg := WorkerConfig{ID: "a1", JobID: "j1", JobName: "build", PipelineID: "p1"}
	job := map[string]string{"GREETING": "hi", "CIPLAT_JOB_ID": "mine", "CI": "false"}
	got := AttemptEnv(cfg, 2, job)
	want := map[string]string{"GREETING": "hi", "CI": "false", "CIPLAT_ATTEMPT": "2", "CIPLAT_ALLOC_ID": "a1",
		"CIPLAT_JOB_ID": "j1", "CIPLAT_JOB_NAME": "build", "CIPLAT_PIPELINE_ID": "p1"}
	if !maps.Equal(got, want) {
		t.Errorf("AttemptEnv = %v, want %v", got, want)
	}
	if job["CIPLAT_JOB_ID"] != "mine" || len(job) != 3 {
		t.Errorf("AttemptEnv modified the job's env: %v", job)
	}
	if got := AttemptEnv(cfg, 1, nil); got == nil || got["CIPLAT_ATTEMPT"] != "1" {
		t.Errorf("AttemptEnv with no job env = %v", got)
	}
}
