package server

import (
	"net/http"

	"github.com/ciplat/ciplat/server/httpapi"
)

// uiCluster is GET /v1/ui/cluster: this server's view of the cluster and
// of its event bus.
type uiCluster struct {
	Server     string        `json:"server"`
	Leader     string        `json:"leader"`
	IsLeader   bool          `json:"is_leader"`
	RaftState  string        `json:"raft_state"`
	RaftIndex  uint64        `json:"raft_index"`
	StateIndex uint64        `json:"state_index"`
	Members    any           `json:"members"`
	Events     *uiEventsInfo `json:"events"`
}

// uiEventsInfo describes the events table and the NATS bus.
type uiEventsInfo struct {
	Kept          int    `json:"kept"`
	Oldest        uint64 `json:"oldest_index"`
	Latest        uint64 `json:"latest_index"`
	PrunedThrough uint64 `json:"pruned_through"`
	NATS          any    `json:"nats,omitempty"`
}

func (s *Server) handleUICluster(w http.ResponseWriter, r *http.Request) (any, error) {
	st := s.State()
	out := &uiCluster{
		Server: s.cfg.NodeName, Leader: s.Leader(), IsLeader: s.IsLeader(),
		RaftState: s.raft.State().String(), RaftIndex: s.raft.AppliedIndex(), StateIndex: st.LatestIndex(),
		Events: &uiEventsInfo{Kept: st.EventCount(), PrunedThrough: st.EventsPrunedThrough()},
	}
	if m, err := s.handleAgentMembers(w, r); err == nil {
		out.Members = m
	}
	if e, _ := st.OldestEvent(); e != nil {
		out.Events.Oldest = e.Index
	}
	if e, _ := st.LatestEvent(); e != nil {
		out.Events.Latest = e.Index
	}
	out.Events.NATS = s.natsInfo(r.Context())
	httpapi.SetIndex(w, out.StateIndex)
	return out, nil
}
