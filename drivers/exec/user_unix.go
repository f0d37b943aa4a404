//go:build unix

package exec

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"syscall"
)

// credential is what SysProcAttr.Credential needs to run a step as r.
func (r *runAs) credential() *syscall.Credential {
	return &syscall.Credential{Uid: r.uid, Gid: r.gid, Groups: r.groups}
}

// canReach checks that r may search (x) every directory from / down to
// dir, so a step's shell can chdir into its workspace; the message names
// the first directory in the way and how to open it.
func (r *runAs) canReach(dir string) error {
	for d := dir; ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return fmt.Errorf("exec: user %s: %w", r.spec, err)
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		perm := fi.Mode().Perm()
		if ok && r.uid != 0 {
			var allowed bool
			switch {
			case st.Uid == r.uid:
				allowed = perm&0o100 != 0
			case st.Gid == r.gid || slices.Contains(r.groups, st.Gid):
				allowed = perm&0o010 != 0
			default:
				allowed = perm&0o001 != 0
			}
			if !allowed {
				return fmt.Errorf("exec: user %s (uid %d) cannot reach the workspaces: %s is mode %04o owned by uid %d: chmod o+x it, or choose a -data-dir the user can reach", r.spec, r.uid, d, perm, st.Uid)
			}
		}
		if d == filepath.Dir(d) {
			return nil
		}
	}
}

// chown gives the workspace to r.
func (r *runAs) chown(path string) error {
	if err := os.Chown(path, int(r.uid), int(r.gid)); err != nil {
		return fmt.Errorf("exec: give workspace %s to user %s: %w (running steps as another user needs the agent to run as root)", path, r.spec, err)
	}
	return nil
}
