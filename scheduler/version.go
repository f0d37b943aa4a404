package scheduler

import (
	"errors"
	"fmt"
	"strings"
)

// maxVersionSegments bounds the dotted numbers of a version ("1.2.3.4").
const maxVersionSegments = 6

// version is a parsed semver-ish version: up to maxVersionSegments dotted
// numbers, an optional "v" prefix, an optional "-prerelease" and "+build"
// (ignored). Missing segments count as 0, so "1.2" equals "1.2.0".
type version struct {
	segs [maxVersionSegments]int64
	n    int    // segments written
	pre  string // prerelease, without the dash
}

// parseVersion parses s without allocating.
func parseVersion(s string) (version, bool) {
	var v version
	s = strings.TrimSpace(s)
	s = strings.TrimPrefix(s, "v")
	if i := strings.IndexByte(s, '+'); i >= 0 {
		s = s[:i]
	}
	if i := strings.IndexByte(s, '-'); i >= 0 {
		v.pre = s[i+1:]
		s = s[:i]
		if v.pre == "" {
			return v, false
		}
	}
	if s == "" {
		return v, false
	}
	for rest, more := s, true; more; {
		var seg string
		seg, rest, more = strings.Cut(rest, ".")
		if v.n == maxVersionSegments || seg == "" || len(seg) > 18 {
			return v, false
		}
		var x int64
		for i := 0; i < len(seg); i++ {
			c := seg[i]
			if c < '0' || c > '9' {
				return v, false
			}
			x = x*10 + int64(c-'0')
		}
		v.segs[v.n] = x
		v.n++
	}
	return v, true
}

// compareVersions returns -1, 0 or 1. A prerelease sorts before its release;
// two prereleases compare by dot-separated identifiers, numeric ones as numbers.
func compareVersions(a, b version) int {
	for i := range maxVersionSegments {
		switch {
		case a.segs[i] < b.segs[i]:
			return -1
		case a.segs[i] > b.segs[i]:
			return 1
		}
	}
	switch {
	case a.pre == b.pre:
		return 0
	case a.pre == "":
		return 1
	case b.pre == "":
		return -1
	}
	return comparePrerelease(a.pre, b.pre)
}

func comparePrerelease(a, b string) int {
	for {
		var x, y string
		var moreA, moreB bool
		x, a, moreA = strings.Cut(a, ".")
		y, b, moreB = strings.Cut(b, ".")
		if c := compareIdent(x, y); c != 0 {
			return c
		}
		switch {
		case !moreA && !moreB:
			return 0
		case !moreA:
			return -1
		case !moreB:
			return 1
		}
	}
}

// compareIdent orders prerelease identifiers as semver does: numeric ones
// numerically and before alphanumeric ones, the rest lexically.
func compareIdent(x, y string) int {
	nx, okx := parseDigits(x)
	ny, oky := parseDigits(y)
	switch {
	case okx && oky:
		switch {
		case nx < ny:
			return -1
		case nx > ny:
			return 1
		}
		return 0
	case okx:
		return -1
	case oky:
		return 1
	}
	return strings.Compare(x, y)
}

func parseDigits(s string) (int64, bool) {
	if s == "" || len(s) > 18 {
		return 0, false
	}
	var x int64
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		x = x*10 + int64(s[i]-'0')
	}
	return x, true
}

// versionConstraint is a comma-separated list of clauses that must all hold,
// each an operator (=, !=, >, <, >=, <=, ~>; = when left out) and a version:
// ">= 1.2, < 2", "~> 1.26" (at least 1.26, below 2), "!= 1.4.0-rc1".
type versionConstraint []versionClause

type versionClause struct {
	op string
	v  version
}

// versionOps lists the clause operators, longest first so ">=" wins over ">".
var versionOps = []string{">=", "<=", "!=", "~>", ">", "<", "="}

// parseVersionConstraint parses s; its errors become reasons users read.
func parseVersionConstraint(s string) (versionConstraint, error) {
	if strings.TrimSpace(s) == "" {
		return nil, errors.New("empty version constraint")
	}
	var vc versionConstraint
	for clause := range strings.SplitSeq(s, ",") {
		clause = strings.TrimSpace(clause)
		op := "="
		for _, o := range versionOps {
			if strings.HasPrefix(clause, o) {
				op, clause = o, strings.TrimSpace(clause[len(o):])
				break
			}
		}
		v, ok := parseVersion(clause)
		if !ok {
			return nil, fmt.Errorf("bad version %q, want e.g. \">= 1.2, < 2\"", clause)
		}
		vc = append(vc, versionClause{op: op, v: v})
	}
	return vc, nil
}

// Check reports whether v satisfies every clause.
func (vc versionConstraint) Check(v version) bool {
	for _, c := range vc {
		if !c.check(v) {
			return false
		}
	}
	return len(vc) > 0
}

func (c versionClause) check(v version) bool {
	cmp := compareVersions(v, c.v)
	switch c.op {
	case "=":
		return cmp == 0
	case "!=":
		return cmp != 0
	case ">":
		return cmp > 0
	case "<":
		return cmp < 0
	case ">=":
		return cmp >= 0
	case "<=":
		return cmp <= 0
	case "~>":
		// Pessimistic: at least c.v, and the same leading segments but the
		// last one written ("~> 1.2" allows 1.x ≥ 1.2; "~> 1.2.3" allows 1.2.x ≥ 1.2.3).
		if cmp < 0 {
			return false
		}
		for i := 0; i < max(1, c.v.n-1); i++ {
			if v.segs[i] != c.v.segs[i] {
				return false
			}
		}
		return true
	}
	return false
}
