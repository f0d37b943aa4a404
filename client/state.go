package client

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/ciplat/ciplat/drivers"
)

// The client's state on disk, under Config.DataDir:
//
//	client/node-id              the node's UUID, created once
//	client/allocs/<alloc>.json  one handleRecord per allocation whose worker
//	                            may still exist or whose final report may not
//	                            have reached the servers
//
// Every write goes to a temporary file that is renamed into place, so a crash
// leaves either the old or the new content, never half of one.

// handleRecord is what the client persists for a running allocation so a
// restarted client can find (and destroy) its worker and tell the servers
// that the attempt was lost.
type handleRecord struct {
	AllocID string                `json:"alloc_id"`
	JobID   string                `json:"job_id"`
	Attempt int                   `json:"attempt"`
	Driver  string                `json:"driver"`
	Handle  *drivers.WorkerHandle `json:"handle"`
}

func (c *Client) stateDir() string  { return filepath.Join(c.cfg.DataDir, "client") }
func (c *Client) allocsDir() string { return filepath.Join(c.stateDir(), "allocs") }

// loadOrCreateNodeID returns the node ID persisted in DataDir/client/node-id,
// creating it (a random UUID) on first start.
func loadOrCreateNodeID(dir string) (string, error) {
	p := filepath.Join(dir, "node-id")
	b, err := os.ReadFile(p)
	if err == nil {
		id := strings.TrimSpace(string(b))
		if !validUUID(id) {
			return "", fmt.Errorf("%s holds %q, not a UUID: delete the file to give this host a new node ID", p, id)
		}
		return id, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	id := newUUID()
	if err := writeFileAtomic(p, []byte(id+"\n")); err != nil {
		return "", err
	}
	return id, nil
}

// newUUID returns a random (version 4) UUID.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

func validUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, r := range s {
		switch i {
		case 8, 13, 18, 23:
			if r != '-' {
				return false
			}
		default:
			if !strings.ContainsRune("0123456789abcdefABCDEF", r) {
				return false
			}
		}
	}
	return true
}

// safeID reports whether an allocation ID can name a file: the servers make
// UUIDs, but a path must never come from the network unchecked.
func safeID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for _, r := range id {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
		default:
			return false
		}
	}
	return true
}

// saveHandle persists rec as allocs/<alloc>.json.
func (c *Client) saveHandle(rec *handleRecord) error {
	b, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(c.allocsDir(), rec.AllocID+".json"), b)
}

// removeHandle forgets an allocation's handle; a missing file is fine.
func (c *Client) removeHandle(allocID string) {
	err := os.Remove(filepath.Join(c.allocsDir(), allocID+".json"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		c.log.Error("cannot remove allocation handle", "alloc_id", allocID, "err", err)
	}
}

// loadHandles reads every persisted handle. Unreadable files are logged and
// skipped (and left in place for a human to look at).
func (c *Client) loadHandles() []*handleRecord {
	ents, err := os.ReadDir(c.allocsDir())
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			c.log.Error("cannot read allocation handles", "dir", c.allocsDir(), "err", err)
		}
		return nil
	}
	var out []*handleRecord
	for _, e := range ents {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".json") {
			continue
		}
		p := filepath.Join(c.allocsDir(), name)
		b, err := os.ReadFile(p)
		if err != nil {
			c.log.Error("cannot read allocation handle", "file", p, "err", err)
			continue
		}
		var rec handleRecord
		if err := json.Unmarshal(b, &rec); err != nil || rec.Handle == nil || rec.AllocID+".json" != name {
			c.log.Error("ignoring corrupt allocation handle", "file", p, "err", err)
			continue
		}
		out = append(out, &rec)
	}
	return out
}

// writeFileAtomic writes b to a temporary file beside p, syncs it and
// renames it over p.
func writeFileAtomic(p string, b []byte) error {
	dir := filepath.Dir(p)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(p)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, p)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write %s: %w", p, err)
	}
	return nil
}
