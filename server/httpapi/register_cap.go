package httpapi

import (
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/ciplat/ciplat/fsm/structs"
	"github.com/ciplat/ciplat/jobspec"
)

// registerEntryCheck refuses, with 413, a pipeline register request whose
// encoded Raft entry would be larger than limit bytes
// (jobspec.Limits.RegisterEntryBytes). It is the edge's last guard after the
// parser's limits: the entry carries the spec twice (the pipeline's and each
// job's copy) plus the pipeline env copied into every job, so a spec within
// every per-field limit could still propose hundreds of MB to every server.
//
// The merged envs are counted first, without encoding: they are what can
// grow past the limit (up to jobs × the pipeline's env), and encoding such
// an entry just to measure it would allocate what the check guards against.
// Only a request under that bound is encoded to measure it exactly.
func registerEntryCheck(req *structs.PipelineRegisterRequest, limit int) error {
	envBytes := 0
	for _, j := range req.Jobs {
		if j == nil {
			continue
		}
		for k, v := range j.Env {
			envBytes += len(k) + len(v)
		}
		if envBytes > limit {
			return entryTooLarge(envBytes, limit, len(req.Jobs), "at least ")
		}
	}
	b, err := json.Marshal(req)
	if err != nil {
		return err
	}
	if len(b) > limit {
		return entryTooLarge(len(b), limit, len(req.Jobs), "")
	}
	return nil
}

func entryTooLarge(size, limit, jobs int, atLeast string) error {
	return &HTTPError{Code: http.StatusRequestEntityTooLarge, Msg: fmt.Sprintf(
		"the pipeline's register entry would be %s%d bytes, more than the %d allowed (%d × the server's -limit-spec-bytes): "+
			"%d jobs each carry their spec and the pipeline's env; shorten the pipeline env or split the pipeline",
		atLeast, size, limit, jobspec.RegisterEntryFactor, jobs)}
}
