package exec

import (
	"fmt"
	"os/user"
	"strconv"
	"strings"
)

// runAs is the user steps run as (Config.User), resolved once by New.
type runAs struct {
	spec   string // as configured, for messages
	name   string // user name, or the UID when it has no passwd entry
	uid    uint32
	gid    uint32
	groups []uint32 // supplementary groups of a named user
}

// lookupUser resolves Config.User: NAME, UID, NAME:GROUP or UID:GID (GROUP
// a name or a GID). A bare UID without a passwd entry runs with GID = UID,
// as Docker's --user does. A name that does not exist is an error saying
// so, not a step that fails later.
func lookupUser(spec string) (*runAs, error) {
	uspec, gspec, hasGroup := strings.Cut(spec, ":")
	if uspec == "" || (hasGroup && gspec == "") {
		return nil, fmt.Errorf("exec: user %q: want NAME, UID, NAME:GROUP or UID:GID", spec)
	}
	r := &runAs{spec: spec}
	var u *user.User
	if n, err := strconv.ParseUint(uspec, 10, 32); err == nil {
		r.uid, r.gid, r.name = uint32(n), uint32(n), uspec
		if found, err := user.LookupId(uspec); err == nil {
			u = found
		}
	} else {
		found, err := user.Lookup(uspec)
		if err != nil {
			return nil, fmt.Errorf("exec: user %q does not exist on this host (%v): create it, or give a UID[:GID]", uspec, err)
		}
		u = found
	}
	if u != nil {
		r.name = u.Username
		uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
		gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("exec: user %q: non-numeric uid %q or gid %q (not a POSIX host?)", uspec, u.Uid, u.Gid)
		}
		r.uid, r.gid = uint32(uid), uint32(gid)
		if !hasGroup {
			ids, _ := u.GroupIds()
			for _, g := range ids {
				if n, err := strconv.ParseUint(g, 10, 32); err == nil {
					r.groups = append(r.groups, uint32(n))
				}
			}
		}
	}
	if hasGroup {
		if n, err := strconv.ParseUint(gspec, 10, 32); err == nil {
			r.gid = uint32(n)
		} else {
			g, err := user.LookupGroup(gspec)
			if err != nil {
				return nil, fmt.Errorf("exec: user %q: group %q does not exist on this host (%v)", spec, gspec, err)
			}
			n, err := strconv.ParseUint(g.Gid, 10, 32)
			if err != nil {
				return nil, fmt.Errorf("exec: user %q: group %q has non-numeric gid %q", spec, gspec, g.Gid)
			}
			r.gid = uint32(n)
		}
	}
	return r, nil
}
