package server

import (
	"encoding/json"
	"net/http"

	"github.com/hashicorp/raft"

	"github.com/ciplat/ciplat/server/httpapi"
)

// snapshotFormat names ciplat's operator snapshot file: one JSON line of
// snapshotMeta, then the state store's Persist stream.
const (
	snapshotFormat  = "ciplat-snapshot"
	snapshotVersion = 1
)

// snapshotMeta is the first line of a snapshot file.
type snapshotMeta struct {
	Format  string `json:"format"`
	Version int    `json:"version"`
	// Index is the latest Raft index reflected in the state.
	Index   uint64 `json:"index"`
	Server  string `json:"server"`
	TakenAt string `json:"taken_at"`
}

// raftServerView is one server of GET /v1/operator/raft/configuration.
type raftServerView struct {
	ID      string `json:"id"`
	Node    string `json:"node"`
	Address string `json:"address"`
	Leader  bool   `json:"leader"`
	Voter   bool   `json:"voter"`
}

// raftConfigView is GET /v1/operator/raft/configuration.
type raftConfigView struct {
	Index   uint64            `json:"index"`
	Servers []*raftServerView `json:"servers"`
}

func (s *Server) handleRaftConfiguration(w http.ResponseWriter, r *http.Request) (any, error) {
	servers, index, err := s.raftServers()
	if err != nil {
		return nil, err
	}
	_, leaderID := s.raft.LeaderWithID()
	out := &raftConfigView{Index: index, Servers: []*raftServerView{}}
	for _, srv := range servers {
		node := string(srv.ID)
		if m, ok := s.memberByID(string(srv.ID)); ok {
			node = m.Name
		}
		out.Servers = append(out.Servers, &raftServerView{
			ID: string(srv.ID), Node: node, Address: string(srv.Address),
			Leader: srv.ID == leaderID, Voter: srv.Suffrage == raft.Voter,
		})
	}
	return out, nil
}

func (s *Server) handleRaftRemovePeer(w http.ResponseWriter, r *http.Request) (any, error) {
	id := r.URL.Query().Get("id")
	if id == "" {
		return nil, httpapi.BadRequest("missing ?id=: the Raft server ID to remove ('ciplat operator raft list-peers' shows them)")
	}
	if err := s.RemovePeer(id); err != nil {
		return nil, err
	}
	return map[string]string{"removed": id}, nil
}

// handleSnapshotSave streams the whole cluster state: a metadata line, then
// the state store's Persist stream, from one consistent read of the
// leader's state (or this server's with ?stale).
func (s *Server) handleSnapshotSave(w http.ResponseWriter, r *http.Request) (any, error) {
	st := s.State()
	meta := snapshotMeta{
		Format: snapshotFormat, Version: snapshotVersion,
		Index: st.LatestIndex(), Server: s.cfg.NodeName, TakenAt: s.now().Format("2006-01-02T15:04:05Z07:00"),
	}
	b, err := json.Marshal(meta)
	if err != nil {
		return nil, err
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", `attachment; filename="ciplat.snap"`)
	httpapi.SetIndex(w, meta.Index)
	// Every write has a deadline (-log-write-timeout): a reader that stops
	// reading fails the download instead of pinning a memdb snapshot.
	out := httpapi.NewDeadlineWriter(w, s.cfg.Logs.WriteTimeout)
	out.WriteHeader(http.StatusOK)
	if _, err := out.Write(append(b, '\n')); err != nil {
		return httpapi.Streamed{}, nil
	}
	if err := st.Persist(out); err != nil {
		if !out.Failed() {
			s.log.Warn("snapshot save", "err", err)
		}
		return httpapi.Streamed{}, nil
	}
	if out.Flush() == nil {
		out.End()
	}
	return httpapi.Streamed{}, nil
}

// handleSnapshotRestore replaces the cluster state with an uploaded
// snapshot (snapshot_restore.go): one at a time (409 while one runs),
// bounded (413), checked before Raft sees it (400, state untouched).
func (s *Server) handleSnapshotRestore(w http.ResponseWriter, r *http.Request) (any, error) {
	limit := s.cfg.snapshotMaxBytes()
	if r.ContentLength > limit {
		return nil, snapshotTooLarge(limit)
	}
	if !s.restoring.CompareAndSwap(false, true) {
		return nil, &httpapi.HTTPError{Code: http.StatusConflict, Msg: "a snapshot restore is already running on the leader; wait for it to finish, then retry"}
	}
	defer s.restoring.Store(false)
	meta, idx, err := s.restoreSnapshot(r.Body, limit)
	if err != nil {
		return nil, err
	}
	httpapi.SetIndex(w, idx)
	return map[string]any{"index": idx, "snapshot_index": meta.Index, "snapshot_server": meta.Server}, nil
}
