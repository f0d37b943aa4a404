package command

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
)

// operatorSnapshotSaveCommand writes a snapshot of the cluster state to a file.
type operatorSnapshotSaveCommand struct{}

func (*operatorSnapshotSaveCommand) Synopsis() string {
	return "Save a snapshot of the whole cluster state to a file"
}

const operatorSnapshotSaveUsage = `Usage: ciplat operator snapshot save [flags] FILE

  Save the state of the whole cluster (pipelines, jobs, allocations, nodes,
  evaluations) as the leader holds it to FILE. The file is written aside and
  renamed into place once complete.

Flags:
` + addressHelp + `
Example:

  $ ciplat operator snapshot save backup.snap
  ==> Saved snapshot at index 1234 to backup.snap (52 KiB)
`

func (c *operatorSnapshotSaveCommand) Run(ui *UI, args []string) int {
	m := newClientMeta(ui, "operator snapshot save", operatorSnapshotSaveUsage)
	pos, code, ok := m.parse(args, 1, 1)
	if !ok {
		return code
	}
	cl, code, ok := m.clientOrExit()
	if !ok {
		return code
	}
	path := pos[0]
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		ui.errorf("create %s: %v", path, err)
		return exitFailure
	}
	defer func() { _ = os.Remove(tmp.Name()) }()
	idx, err := cl.SaveSnapshot(context.Background(), tmp)
	if err != nil {
		tmp.Close()
		return m.apiError(cl, "save snapshot", err)
	}
	st, _ := tmp.Stat()
	if err := tmp.Close(); err != nil {
		ui.errorf("write %s: %v", path, err)
		return exitFailure
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		ui.errorf("write %s: %v", path, err)
		return exitFailure
	}
	size := int64(0)
	if st != nil {
		size = st.Size()
	}
	fmt.Fprintf(ui.Stdout, "==> Saved snapshot at index %d to %s (%d KiB)\n", idx, path, (size+1023)/1024)
	return exitOK
}

// operatorSnapshotRestoreCommand replaces the cluster state with a snapshot.
type operatorSnapshotRestoreCommand struct{}

func (*operatorSnapshotRestoreCommand) Synopsis() string {
	return "Restore the whole cluster state from a snapshot file"
}

const operatorSnapshotRestoreUsage = `Usage: ciplat operator snapshot restore [flags] FILE

  Replace the state of the whole cluster with the snapshot in FILE (saved by
  'ciplat operator snapshot save'). Everything written since the snapshot
  is lost. The file is checked whole before anything changes; the restore is
  one Raft entry, so every server switches at once.

Flags:
` + addressHelp + `
Example:

  $ ciplat operator snapshot restore backup.snap
  ==> Restored snapshot of index 1234 (taken on s1) at index 1301
`

func (c *operatorSnapshotRestoreCommand) Run(ui *UI, args []string) int {
	m := newClientMeta(ui, "operator snapshot restore", operatorSnapshotRestoreUsage)
	pos, code, ok := m.parse(args, 1, 1)
	if !ok {
		return code
	}
	cl, code, ok := m.clientOrExit()
	if !ok {
		return code
	}
	f, err := os.Open(pos[0])
	if err != nil {
		ui.errorf("%v", err)
		return exitUsage
	}
	defer f.Close()
	res, err := cl.RestoreSnapshot(context.Background(), f)
	if err != nil {
		return m.apiError(cl, "restore snapshot "+pos[0], err)
	}
	fmt.Fprintf(ui.Stdout, "==> Restored snapshot of index %d (taken on %s) at index %d\n", res.SnapshotIndex, res.SnapshotServer, res.Index)
	return exitOK
}
