package server

import (
	"net/http"
	"time"

	"github.com/hashicorp/raft"
)

// memberView is one row of GET /v1/agent/members.
type memberView struct {
	Name   string            `json:"name"`
	Addr   string            `json:"addr"`
	Status string            `json:"status"`
	Tags   map[string]string `json:"tags"`
	Leader bool              `json:"leader"`
	Voter  bool              `json:"voter"`
	// RaftState is this server's own Raft state for itself ("Leader",
	// "Follower", "Candidate"), and for others what the local Raft
	// configuration says ("Leader", "Follower", or "None" when not a peer).
	RaftState string `json:"raft_state"`
	RaftAddr  string `json:"raft_addr"`
	HTTPAddr  string `json:"http_addr"`
	Protocol  uint8  `json:"protocol"`
}

// voters returns the Raft configuration's servers known locally.
func (s *Server) raftServers() ([]raft.Server, uint64, error) {
	cf := s.raft.GetConfiguration()
	if err := cf.Error(); err != nil {
		return nil, 0, err
	}
	return cf.Configuration().Servers, cf.Index(), nil
}

func (s *Server) handleStatusPeers(w http.ResponseWriter, r *http.Request) (any, error) {
	servers, _, err := s.raftServers()
	if err != nil {
		return nil, err
	}
	out := []string{}
	for _, srv := range servers {
		if srv.Suffrage == raft.Voter {
			out = append(out, string(srv.Address))
		}
	}
	return out, nil
}

func (s *Server) handleAgentMembers(w http.ResponseWriter, r *http.Request) (any, error) {
	servers, _, err := s.raftServers()
	if err != nil {
		return nil, err
	}
	voters := map[string]bool{}
	for _, srv := range servers {
		voters[string(srv.ID)] = srv.Suffrage == raft.Voter
	}
	_, leaderID := s.raft.LeaderWithID()
	out := []*memberView{}
	for _, m := range s.serverMembers() {
		v := &memberView{
			Name: m.Name, Addr: m.Addr, Status: m.Status.String(), Tags: m.Tags,
			Leader: string(leaderID) == m.ID, Voter: voters[m.ID],
			RaftAddr: m.RaftAddr, HTTPAddr: m.HTTPAddr, Protocol: m.Protocol,
		}
		_, inRaft := voters[m.ID]
		switch {
		case m.ID == s.cfg.NodeName:
			v.RaftState = s.raft.State().String()
		case v.Leader:
			v.RaftState = raft.Leader.String()
		case inRaft:
			v.RaftState = raft.Follower.String()
		default:
			v.RaftState = "None"
		}
		out = append(out, v)
	}
	return out, nil
}

func (s *Server) handleAgentLeave(w http.ResponseWriter, r *http.Request) (any, error) {
	err := s.Leave(10 * time.Second)
	s.leaveOnce.Do(func() { close(s.leaveCh) })
	if err != nil {
		return nil, err
	}
	return map[string]string{"left": s.cfg.NodeName}, nil
}
