package server

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"github.com/hashicorp/raft"

	"github.com/ciplat/ciplat/fsm/state"
	"github.com/ciplat/ciplat/fsm/structs"
)

// maxSnapshotBytes bounds an uploaded snapshot (PUT /v1/operator/snapshot):
// the restore travels as one Raft entry.
const maxSnapshotBytes = 256 << 20

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
		return nil, badRequest("missing ?id=: the Raft server ID to remove ('ciplat operator raft list-peers' shows them)")
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
	setIndex(w, meta.Index)
	w.WriteHeader(http.StatusOK)
	if _, err := w.Write(append(b, '\n')); err != nil {
		return streamed{}, nil
	}
	if err := st.Persist(w); err != nil {
		s.log.Warn("snapshot save", "err", err)
	}
	return streamed{}, nil
}

// handleSnapshotRestore replaces the cluster state with an uploaded
// snapshot, through one Raft entry, once the file has been read whole and
// checked.
func (s *Server) handleSnapshotRestore(w http.ResponseWriter, r *http.Request) (any, error) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, err
	}
	meta, stream, err := parseSnapshot(body)
	if err != nil {
		return nil, err
	}
	resp, idx, err := s.apply(structs.StateRestoreRequestType, &structs.StateRestoreRequest{
		WriteRequest: structs.WriteRequest{Timestamp: s.now()},
		State:        stream,
	})
	if err != nil {
		return nil, err
	}
	if _, ok := resp.(*structs.StateRestoreResponse); !ok {
		return nil, fmt.Errorf("unexpected restore response %T", resp)
	}
	setIndex(w, idx)
	return map[string]any{"index": idx, "snapshot_index": meta.Index, "snapshot_server": meta.Server}, nil
}

// parseSnapshot checks a snapshot file: its metadata line, then a state
// stream that restores completely.
func parseSnapshot(body []byte) (*snapshotMeta, []byte, error) {
	line, rest, ok := bytes.Cut(body, []byte("\n"))
	if !ok {
		return nil, nil, badRequest("not a ciplat snapshot: no metadata line (save one with 'ciplat operator snapshot save FILE')")
	}
	var meta snapshotMeta
	if err := json.Unmarshal(line, &meta); err != nil || meta.Format != snapshotFormat {
		return nil, nil, badRequest("not a ciplat snapshot: the first line is not its metadata (save one with 'ciplat operator snapshot save FILE')")
	}
	if meta.Version != snapshotVersion {
		return nil, nil, badRequest("snapshot version %d: this server reads version %d", meta.Version, snapshotVersion)
	}
	if _, err := state.Restore(bufio.NewReader(bytes.NewReader(rest))); err != nil {
		return nil, nil, badRequest("snapshot is damaged: %v", err)
	}
	return &meta, rest, nil
}
