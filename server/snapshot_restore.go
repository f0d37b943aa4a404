package server

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/raft"

	"github.com/ciplat/ciplat/fsm/state"
	"github.com/ciplat/ciplat/server/httpapi"
)

// DefaultSnapshotMaxBytes is the default bound of an uploaded snapshot
// (Config.SnapshotMaxBytes, -snapshot-max-bytes): 1 GiB, several times the
// state of a busy cluster (≈ 1 KiB per job), while a disk and an RSS that
// hold the state hold it.
const DefaultSnapshotMaxBytes int64 = 1 << 30

func (c *Config) snapshotMaxBytes() int64 {
	if c.SnapshotMaxBytes <= 0 {
		return DefaultSnapshotMaxBytes
	}
	return c.SnapshotMaxBytes
}

// restoreIndexGap is how far past the leader's last Raft index a restored
// snapshot is installed. Every table index of the restored state is set to
// that index before the check, so the entries committed while the upload
// is checked (fewer than the gap, else the restore answers 503) stay below
// it: no client ever sees an index go backwards.
const restoreIndexGap = 1 << 16

// restoreUploadPattern names the temporary copy of an upload in the data
// dir; leftovers of a crashed server are removed by the next restore.
const restoreUploadPattern = "snapshot-restore-*.tmp"

// maxSnapshotMetaLine bounds the snapshot file's first (metadata) line.
const maxSnapshotMetaLine = 4 << 10

func snapshotTooLarge(limit int64) error {
	return &httpapi.HTTPError{Code: http.StatusRequestEntityTooLarge,
		Msg: fmt.Sprintf("snapshot is larger than %d bytes, this server's limit (-snapshot-max-bytes)", limit)}
}

// restoreSnapshot makes an uploaded snapshot file the cluster's state. The
// upload streams to a temporary file in the data dir (never whole in
// memory), rewritten on the way with every table index set to the index
// it will be installed at (state.Reindex); the copy is then checked the
// way every server will restore it (state.Verify, bounded memory), and
// only then handed to hashicorp/raft's user restore, which installs it
// from the file on the leader and sends it to the followers as an
// InstallSnapshot (one Raft entry never holds it). A refused upload
// leaves the state as it was. The caller allows one restore at a time.
func (s *Server) restoreSnapshot(body io.Reader, limit int64) (*snapshotMeta, uint64, error) {
	old, _ := filepath.Glob(filepath.Join(s.cfg.DataDir, restoreUploadPattern))
	for _, f := range old {
		_ = os.Remove(f)
	}
	br := bufio.NewReaderSize(body, maxSnapshotMetaLine)
	meta, err := readSnapshotMeta(br, limit)
	if err != nil {
		return nil, 0, err
	}
	at := s.raft.LastIndex() + restoreIndexGap
	tmp, err := os.CreateTemp(s.cfg.DataDir, restoreUploadPattern)
	if err != nil {
		return nil, 0, fmt.Errorf("snapshot restore: temporary file: %w", err)
	}
	defer func() {
		_ = tmp.Close()
		_ = os.Remove(tmp.Name())
	}()
	err = state.Reindex(br, tmp, at)
	if err == nil {
		// Read what the stream's footer left, so a body past the limit
		// is refused even when its excess trails the footer.
		_, err = io.Copy(io.Discard, br)
	}
	if err != nil {
		if mbe := (*http.MaxBytesError)(nil); errors.As(err, &mbe) {
			return nil, 0, snapshotTooLarge(limit)
		}
		return nil, 0, httpapi.BadRequest("snapshot is damaged: %v", err)
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return nil, 0, err
	}
	if _, err := state.Verify(bufio.NewReaderSize(tmp, 64<<10)); err != nil {
		return nil, 0, httpapi.BadRequest("snapshot is damaged: %v", err)
	}
	fi, err := tmp.Stat()
	if err != nil {
		return nil, 0, err
	}
	size := fi.Size()
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return nil, 0, err
	}
	if last := s.raft.LastIndex(); last >= at-1 {
		return nil, 0, fmt.Errorf("%w: the cluster committed %d entries while the snapshot was checked (more than %d); retry",
			ErrNoLeader, last+restoreIndexGap-at, restoreIndexGap)
	}
	// raft installs the snapshot at max(its last index, Index)+1 = at.
	rmeta := &raft.SnapshotMeta{Version: raft.SnapshotVersionMax, Index: at - 1, Size: size}
	began := time.Now()
	if err := s.raft.Restore(rmeta, tmp, 0); err != nil {
		if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) {
			return nil, 0, ErrNoLeader
		}
		return nil, 0, fmt.Errorf("snapshot restore: %w", err)
	}
	s.log.Info("snapshot restored", "index", at, "bytes", size, "took", time.Since(began),
		"snapshot_index", meta.Index, "snapshot_server", meta.Server)
	return meta, at, nil
}

// readSnapshotMeta reads and checks a snapshot file's first line: its
// format and version.
func readSnapshotMeta(br *bufio.Reader, limit int64) (*snapshotMeta, error) {
	line, err := br.ReadSlice('\n')
	if mbe := (*http.MaxBytesError)(nil); errors.As(err, &mbe) {
		return nil, snapshotTooLarge(limit)
	}
	if err != nil {
		return nil, httpapi.BadRequest("not a ciplat snapshot: no metadata line (save one with 'ciplat operator snapshot save FILE')")
	}
	var meta snapshotMeta
	if err := json.Unmarshal(line, &meta); err != nil || meta.Format != snapshotFormat {
		return nil, httpapi.BadRequest("not a ciplat snapshot: the first line is not its metadata (save one with 'ciplat operator snapshot save FILE')")
	}
	if meta.Version != snapshotVersion {
		return nil, httpapi.BadRequest("snapshot version %d: this server reads version %d", meta.Version, snapshotVersion)
	}
	return &meta, nil
}
