package exec

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ciplat/ciplat/drivers"
	"github.com/ciplat/ciplat/drivers/internal/workerset"
)

// stateWorkspace is the WorkerHandle.State key holding the workspace path.
// It is informational: the driver always derives the path from Root and the
// worker ID, so a tampered handle cannot point it at another directory.
const stateWorkspace = "workspace"

// metaDirName is the directory under Root that holds one JSON file per
// worker. It starts with a dot, and worker IDs may not, so it cannot clash
// with a workspace.
const metaDirName = ".workers"

// workerMeta is the content of a worker's JSON file: enough to run steps in
// the worker after a restart with nothing but its handle.
type workerMeta struct {
	Handle  drivers.WorkerHandle `json:"handle"`
	Config  drivers.WorkerConfig `json:"config"`
	Created time.Time            `json:"created"`
}

// CreateWorker creates the workspace <Root>/<cfg.ID> (0700, owned by
// Config.User when set) and records cfg beside it. cfg.Image is ignored;
// CPU and MemoryMB limit each step as Config.Limits says. The ID must be a plain file name not starting with
// '.'; a worker with the same ID must not exist.
func (d *Driver) CreateWorker(ctx context.Context, cfg drivers.WorkerConfig) (*drivers.WorkerHandle, error) {
	if err := validID(cfg.ID); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if d.root == "" {
		return nil, errors.New("exec: Config.Root is empty: set the directory where workspaces live")
	}
	if d.userErr != nil {
		return nil, d.userErr
	}
	if err := os.MkdirAll(d.metaDir(), 0o700); err != nil {
		return nil, fmt.Errorf("exec: workspace root %s is not usable: %w", d.root, err)
	}
	if d.user != nil {
		if err := os.Chmod(d.root, 0o711); err != nil {
			return nil, fmt.Errorf("exec: workspace root %s: %w", d.root, err)
		}
	}
	ws := d.workspace(cfg.ID)
	if err := os.Mkdir(ws, 0o700); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("exec: worker %s already exists at %s: use a new worker ID per job attempt: %w", cfg.ID, ws, err)
		}
		return nil, fmt.Errorf("exec: create workspace: %w", err)
	}
	if d.user != nil {
		if err := d.user.chown(ws); err != nil {
			_ = os.Remove(ws)
			return nil, err
		}
	}
	h := &drivers.WorkerHandle{
		ID:     cfg.ID,
		Driver: d.Name(),
		JobID:  cfg.JobID,
		State:  map[string]string{stateWorkspace: ws},
	}
	meta := workerMeta{Handle: *h, Config: cfg, Created: time.Now().UTC()}
	if err := writeMeta(d.metaPath(cfg.ID), meta); err != nil {
		_ = os.Remove(ws) // best effort: ListWorkers would find it anyway
		return nil, err
	}
	d.workers.Put(cfg.ID, meta)
	d.log.Debug("worker created", "worker", cfg.ID, "workspace", ws)
	return workerset.CloneHandle(h), nil
}

// DestroyWorker kills the steps running in the worker (SIGKILL to their
// process groups), waits for them to return, and removes the workspace and
// the worker's record. Destroying a worker that is gone returns nil. A step
// interrupted this way returns an error wrapping drivers.ErrWorkerNotFound.
// If ctx ends while steps are still stopping, DestroyWorker returns ctx's
// error and leaves the workspace; call it again.
func (d *Driver) DestroyWorker(ctx context.Context, h *drivers.WorkerHandle) error {
	if h == nil {
		return errors.New("exec: DestroyWorker: nil handle")
	}
	if err := validID(h.ID); err != nil {
		return err
	}
	// Mark the worker destroyed (a tombstone if this Driver never saw it),
	// so no step can start while it goes away, and SIGKILL its steps.
	t := d.workers.Destroy(h.ID)
	if err := t.Wait(ctx); err != nil {
		return fmt.Errorf("exec: destroy worker %s: steps still stopping: %w", h.ID, err)
	}

	if err := d.reapCgroups(h.ID); err != nil {
		return fmt.Errorf("exec: destroy worker %s: remove step cgroups left by an earlier agent: %w", h.ID, err)
	}
	ws := d.workspace(h.ID)
	if err := removeAll(ws); err != nil {
		return fmt.Errorf("exec: destroy worker %s: remove workspace: %w", h.ID, err)
	}
	if err := os.Remove(d.metaPath(h.ID)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("exec: destroy worker %s: %w", h.ID, err)
	}
	t.Forget()
	d.log.Debug("worker destroyed", "worker", h.ID, "steps_killed", t.Steps())
	return nil
}

// RecoverWorker returns nil when the worker's workspace exists and an error
// wrapping drivers.ErrWorkerNotFound when it does not. Steps that were
// running when the old agent stopped are not re-attached: the agent that
// started them was their only reader.
func (d *Driver) RecoverWorker(ctx context.Context, h *drivers.WorkerHandle) error {
	if h == nil {
		return errors.New("exec: RecoverWorker: nil handle")
	}
	if err := validID(h.ID); err != nil {
		return err
	}
	fi, err := os.Stat(d.workspace(h.ID))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("exec: worker %s: %w", h.ID, drivers.ErrWorkerNotFound)
	case err != nil:
		return fmt.Errorf("exec: recover worker %s: %w", h.ID, err)
	case !fi.IsDir():
		return fmt.Errorf("exec: worker %s: %s is not a directory: %w", h.ID, d.workspace(h.ID), drivers.ErrWorkerNotFound)
	}
	return nil
}

// ListWorkers returns a handle for every workspace under Root and for every
// worker record without one (a create or destroy cut short), sorted by ID.
// Handles come from the worker's record when it is readable and are rebuilt
// from the ID otherwise, so every orphan can be destroyed. A missing Root
// means no workers.
func (d *Driver) ListWorkers(ctx context.Context) ([]*drivers.WorkerHandle, error) {
	if d.root == "" {
		return nil, errors.New("exec: Config.Root is empty: set the directory where workspaces live")
	}
	ids := map[string]bool{}
	entries, err := os.ReadDir(d.root)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("exec: list workers: %w", err)
	}
	for _, e := range entries {
		if e.IsDir() && validID(e.Name()) == nil {
			ids[e.Name()] = true
		}
	}
	metas, err := os.ReadDir(d.metaDir())
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("exec: list workers: %w", err)
	}
	for _, e := range metas {
		if id, ok := strings.CutSuffix(e.Name(), ".json"); ok && !e.IsDir() && validID(id) == nil {
			ids[id] = true
		}
	}
	out := make([]*drivers.WorkerHandle, 0, len(ids))
	for id := range ids {
		if meta, err := readMeta(d.metaPath(id)); err == nil && meta.Handle.ID == id {
			out = append(out, workerset.CloneHandle(&meta.Handle))
			continue
		}
		out = append(out, &drivers.WorkerHandle{
			ID:     id,
			Driver: d.Name(),
			State:  map[string]string{stateWorkspace: d.workspace(id)},
		})
	}
	workerset.SortHandles(out)
	return out, nil
}

// startStep registers a step about to run in worker h and returns the
// worker's record and the step, whose Killed channel DestroyWorker closes:
// SIGKILL the step then. The caller must call the step's Finish when it
// has returned. It fails with ErrWorkerNotFound when the worker is gone or
// going.
func (d *Driver) startStep(ctx context.Context, h *drivers.WorkerHandle) (workerMeta, *workerset.Step, error) {
	if h == nil {
		return workerMeta{}, nil, errors.New("exec: RunStep: nil handle")
	}
	if err := validID(h.ID); err != nil {
		return workerMeta{}, nil, err
	}
	notFound := fmt.Errorf("exec: worker %s: %w", h.ID, drivers.ErrWorkerNotFound)

	if !d.workers.Known(h.ID) { // created by an earlier agent: load its record
		if err := d.RecoverWorker(ctx, h); err != nil {
			return workerMeta{}, nil, err
		}
		meta, err := readMeta(d.metaPath(h.ID))
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return workerMeta{}, nil, notFound
			}
			return workerMeta{}, nil, err
		}
		d.workers.Load(h.ID, meta)
	}
	meta, s, ok := d.workers.Start(h.ID)
	if !ok {
		return workerMeta{}, nil, notFound
	}
	return meta, s, nil
}

// checkWorkspace runs after startStep has registered a step: if a
// DestroyWorker removed the workspace between the two, the step must not
// start. (A DestroyWorker that begins later sees the step and cancels it.)
func (d *Driver) checkWorkspace(id string) error {
	fi, err := os.Stat(d.workspace(id))
	if err != nil || !fi.IsDir() {
		return fmt.Errorf("exec: worker %s: %w", id, drivers.ErrWorkerNotFound)
	}
	return nil
}

// workspace is the workspace directory of worker id.
func (d *Driver) workspace(id string) string { return filepath.Join(d.root, id) }

// metaDir is the directory holding the worker records.
func (d *Driver) metaDir() string { return filepath.Join(d.root, metaDirName) }

// metaPath is the record file of worker id.
func (d *Driver) metaPath(id string) string { return filepath.Join(d.metaDir(), id+".json") }

// validID checks that id can name a directory under Root and nothing else.
func validID(id string) error {
	bad := id == "" || len(id) > 200 || id[0] == '.' ||
		strings.ContainsAny(id, `/\:`) || strings.ContainsFunc(id, func(r rune) bool { return r < ' ' || r == 0x7f })
	if bad {
		return fmt.Errorf("exec: worker ID %q: want 1-200 characters, no '/', '\\', ':' or control characters, not starting with '.'", id)
	}
	return nil
}

// writeMeta writes m to path atomically (temp file, then rename), 0600
// because the worker's env may hold secrets.
func writeMeta(path string, m workerMeta) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("exec: encode worker record: %w", err)
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return fmt.Errorf("exec: write worker record: %w", err)
	}
	_, err = f.Write(append(b, '\n'))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		_ = os.Remove(f.Name())
		return fmt.Errorf("exec: write worker record: %w", err)
	}
	return nil
}

// readMeta reads a worker record written by writeMeta.
func readMeta(path string) (workerMeta, error) {
	var m workerMeta
	b, err := os.ReadFile(path)
	if err != nil {
		return m, err
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("exec: worker record %s: %w", path, err)
	}
	return m, nil
}

// removeAll is os.RemoveAll that also removes trees a step made read-only
// (the Go module cache does that): on failure it makes every directory
// writable by its owner and tries once more.
func removeAll(dir string) error {
	err := os.RemoveAll(dir)
	if err == nil {
		return nil
	}
	_ = filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
		if err == nil && e.IsDir() {
			if info, err := e.Info(); err == nil {
				_ = os.Chmod(path, info.Mode().Perm()|0o700)
			}
		}
		return nil
	})
	return os.RemoveAll(dir)
}
