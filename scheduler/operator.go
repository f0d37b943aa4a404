package scheduler

import (
	"errors"
	"regexp"
	"regexp/syntax"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/ciplat/ciplat/fsm/structs"
)

// Constraint and affinity operators (structs.ConstraintOps).
const (
	opEqual       = "="
	opNotEqual    = "!="
	opLess        = "<"
	opGreater     = ">"
	opLessEqual   = "<="
	opGreaterEq   = ">="
	opRegexp      = "regexp"
	opSetContains = "set_contains"
	opIsSet       = "is_set"
	opIsNotSet    = "is_not_set"
	opVersion     = "version"
)

// maxCached bounds each cache of the matcher. Constraints come from users, so
// a long-lived server could otherwise grow its caches without end; past the
// bound operands are compiled on every use, which is slower but still right.
const maxCached = 8192

// matcher evaluates constraint and affinity operators against node
// attributes. The attribute a constraint names is node.Attributes[attr], or
// the node's ID for "node.id" and its name for "node.name".
//
//	=  !=          exact string equality; != also holds when the attribute is absent
//	<  >  <=  >=   numeric when both sides parse as numbers, else lexical
//	regexp         the attribute matches the RE2 expression in Value
//	set_contains   the comma-separated attribute holds every comma-separated Value
//	is_set         the attribute is present (is_not_set: absent); Value unused
//	version        the attribute is a version satisfying Value, e.g. ">= 1.2, < 2"
//
// Every other operator needs the attribute present. Operands that need
// compiling (a regexp, a version constraint, a set, a number) are compiled
// once and kept in a sync.Map, as are reason strings, so matching a node does
// not allocate. A bad operand (invalid regexp or version constraint, unknown
// operator) matches no node, and its reason says why. Safe for concurrent use.
type matcher struct {
	operands cache // operandKey → *operand
	reasons  cache // reasonKey → string
}

func newMatcher() *matcher { return &matcher{} }

// cache is a sync.Map that stops growing at maxCached entries.
type cache struct {
	m    sync.Map
	size atomic.Int64
}

func (c *cache) load(k any) (any, bool) { return c.m.Load(k) }

// store keeps v unless the cache is full, and returns the value to use (the
// one already stored when another goroutine was first).
func (c *cache) store(k, v any) any {
	if c.size.Load() >= maxCached {
		return v
	}
	if old, loaded := c.m.LoadOrStore(k, v); loaded {
		return old
	}
	c.size.Add(1)
	return v
}

// operandKey names a compiled operand: the attribute does not matter.
type operandKey struct{ op, value string }

// operand is an operator's Value, compiled.
type operand struct {
	value   string
	re      *regexp.Regexp
	set     []string
	version versionConstraint
	num     float64
	isNum   bool
	invalid string // why the operand can never match; "" when it is valid
}

// lookupAttr returns the node attribute a constraint names.
func lookupAttr(node *structs.Node, attr string) (string, bool) {
	switch attr {
	case "node.id":
		return node.ID, true
	case "node.name":
		return node.Name, true
	}
	v, ok := node.Attributes[attr]
	return v, ok
}

// Match reports whether the node's attribute attr satisfies op value.
func (m *matcher) Match(node *structs.Node, attr, op, value string) bool {
	v, found := lookupAttr(node, attr)
	switch op {
	case opEqual:
		return found && v == value
	case opNotEqual:
		return !found || v != value
	case opIsSet:
		return found
	case opIsNotSet:
		return !found
	}
	if !found {
		return false
	}
	o := m.operand(op, value)
	if o.invalid != "" {
		return false
	}
	switch op {
	case opLess, opGreater, opLessEqual, opGreaterEq:
		return compareOrdered(op, v, o)
	case opRegexp:
		return o.re.MatchString(v)
	case opSetContains:
		return setContains(v, o.set)
	case opVersion:
		ver, ok := parseVersion(v)
		return ok && o.version.Check(ver)
	}
	return false
}

// operand returns the compiled operand of op value, compiling it on first use.
func (m *matcher) operand(op, value string) *operand {
	k := operandKey{op, value}
	if o, ok := m.operands.load(k); ok {
		return o.(*operand)
	}
	return m.operands.store(k, compileOperand(op, value)).(*operand)
}

func compileOperand(op, value string) *operand {
	o := &operand{value: value}
	switch op {
	case opEqual, opNotEqual, opIsSet, opIsNotSet:
	case opLess, opGreater, opLessEqual, opGreaterEq:
		o.num, o.isNum = parseNumber(value)
	case opRegexp:
		re, err := regexp.Compile(value)
		if err != nil {
			o.invalid = "bad regexp"
			if se := (*syntax.Error)(nil); errors.As(err, &se) {
				o.invalid = string(se.Code)
			}
			break
		}
		o.re = re
	case opSetContains:
		for item := range strings.SplitSeq(value, ",") {
			if item = strings.TrimSpace(item); item != "" {
				o.set = append(o.set, item)
			}
		}
		if len(o.set) == 0 {
			o.invalid = "empty set"
		}
	case opVersion:
		vc, err := parseVersionConstraint(value)
		if err != nil {
			o.invalid = err.Error()
			break
		}
		o.version = vc
	default:
		o.invalid = "unknown operator " + strconv.Quote(op) + ", want one of " + strings.Join(structs.ConstraintOps, " ")
	}
	return o
}

// compareOrdered applies < > <= >= numerically when both sides are numbers,
// lexically otherwise.
func compareOrdered(op, attr string, o *operand) bool {
	var c int
	if a, ok := parseNumber(attr); ok && o.isNum {
		switch {
		case a < o.num:
			c = -1
		case a > o.num:
			c = 1
		}
	} else {
		c = strings.Compare(attr, o.value)
	}
	switch op {
	case opLess:
		return c < 0
	case opGreater:
		return c > 0
	case opLessEqual:
		return c <= 0
	default:
		return c >= 0
	}
}

// parseNumber parses a decimal number. It rejects anything but digits, signs,
// dots and exponents before calling strconv, whose errors allocate.
func parseNumber(s string) (float64, bool) {
	digits := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9':
			digits = true
		case c == '.' || c == '-' || c == '+' || c == 'e' || c == 'E':
		default:
			return 0, false
		}
	}
	if !digits {
		return 0, false
	}
	f, err := strconv.ParseFloat(s, 64)
	return f, err == nil
}

// setContains reports whether the comma-separated list attr holds every item
// of want. It scans attr in place, without splitting it.
func setContains(attr string, want []string) bool {
	for _, w := range want {
		found := false
		for rest, more := attr, true; more && !found; {
			var item string
			item, rest, more = strings.Cut(rest, ",")
			found = strings.TrimSpace(item) == w
		}
		if !found {
			return false
		}
	}
	return true
}

// reasonKind says which rejection a reasonKey describes.
type reasonKind uint8

const (
	reasonConstraint reasonKind = iota
	reasonMissingDriver
	reasonUnhealthyDriver
	reasonNoContainerDriver
)

// reasonKey names a rejection reason that depends on the job.
type reasonKey struct {
	kind            reasonKind
	attr, op, value string
}

// reason returns the reason string for k, built once and cached.
func (m *matcher) reason(k reasonKey) string {
	if r, ok := m.reasons.load(k); ok {
		return r.(string)
	}
	return m.reasons.store(k, m.buildReason(k)).(string)
}

func (m *matcher) buildReason(k reasonKey) string {
	switch k.kind {
	case reasonMissingDriver:
		return "missing driver " + k.value
	case reasonUnhealthyDriver:
		return "driver " + k.value + " not healthy"
	case reasonNoContainerDriver:
		return reasonNoContainerPrefix + k.value
	}
	r := "constraint " + k.attr + " " + k.op
	if k.value != "" {
		r += " " + k.value
	}
	if o := m.operand(k.op, k.value); o.invalid != "" {
		r += " is invalid: " + o.invalid
	}
	return r
}
