package server

import (
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/ciplat/ciplat/fsm/structs"
)

// registerEntryCheck refuses, with 413, a pipeline register request whose
// encoded Raft entry would be larger than limit bytes
// (SpecLimits.RegisterEntryBytes). It is the edge's last guard after the
// parser's limits: the entry carries the spec twice (the pipeline's and each
// job's copy) plus the pipeline env copied into every job, so a spec within
// every per-field limit could still propose hundreds of MB to every server.
func registerEntryCheck(req *structs.PipelineRegisterRequest, limit int) error {
	b, err := json.Marshal(req)
	if err != nil {
		return err
	}
	if len(b) > limit {
		return &HTTPError{Code: http.StatusRequestEntityTooLarge, Msg: fmt.Sprintf(
			"the pipeline's register entry would be %d bytes, more than the %d allowed (%d × the server's -limit-spec-bytes): "+
				"%d jobs each carry their spec and the pipeline's env; shorten the pipeline env or split the pipeline",
			len(b), limit, structs.RegisterEntryFactor, len(req.Jobs))}
	}
	return nil
}
