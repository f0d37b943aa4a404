package jobspec

import (
	"fmt"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/ciplat/ciplat/fsm/structs"
)

// specParser walks a yaml.Node tree into a PipelineSpec, collecting every
// problem with its position, and remembers where each field was written so
// that problems found later, on the struct, can point at the right line.
type specParser struct {
	lim  Limits
	errs Errors
	pos  map[string]specPos // field path → where its value (or key) was written
	bad  map[string]bool    // field paths that already have a parse error

	// budget bounds the nodes visited: YAML aliases can make a small document
	// expand exponentially ("billion laughs").
	budget int
	// bytes bounds the bytes of the scalars visited, keys and values,
	// each counted every time an alias reaches it: the node budget alone
	// let a 63 KB spec reuse one 60 KB command 3000 times (180 MB of spec,
	// twice in its Raft entry) while every field stayed within its limit.
	bytes   int
	over    bool
	overErr *Error

	// reschedBase is the pipeline's reschedule block, the base of each
	// job's (spec_reschedule.go).
	reschedBase *structs.ReschedulePolicy
	// tagged are the nodes written with a tag ciplat does not read
	// (!!binary, !custom); each is reported once, at its field path when
	// a walker reaches it (at), else at the end by line (strayTags).
	tagged map[*yaml.Node]bool
}

type specPos struct{ line, col int }

func newSpecParser(root *yaml.Node, lim Limits) *specParser {
	count, tagged := specCountNodes(root)
	return &specParser{
		lim:    lim,
		pos:    map[string]specPos{"": {root.Line, root.Column}},
		bad:    map[string]bool{},
		budget: 10*count + 10000,
		tagged: tagged,
	}
}

// specCountNodes counts the nodes written in the document, not following
// aliases, and returns those written with a tag ciplat does not read.
func specCountNodes(root *yaml.Node) (int, map[*yaml.Node]bool) {
	count := 0
	var tagged map[*yaml.Node]bool
	stack := []*yaml.Node{root}
	for len(stack) > 0 {
		n := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		count++
		if n.Style&yaml.TaggedStyle != 0 && !specContains(specPlainTags, n.ShortTag()) {
			if tagged == nil {
				tagged = map[*yaml.Node]bool{}
			}
			tagged[n] = true
		}
		if n.Kind != yaml.AliasNode {
			stack = append(stack, n.Content...)
		}
	}
	return count, tagged
}

// specPlainTags are the YAML tags a spec may write explicitly (!!str 123):
// the core schema's. Anything else (!!binary, !!timestamp, !!set, a custom
// !foo) would be read as its plain text, which is surely not what its
// author meant, so it is refused.
var specPlainTags = []string{"!!str", "!!int", "!!float", "!!bool", "!!null", "!!map", "!!seq"}

// tagError reports a node with an unknown tag at path, once.
func (p *specParser) tagError(n *yaml.Node, path string) {
	if !p.tagged[n] {
		return
	}
	delete(p.tagged, n)
	report := p.fail
	if path == "" {
		report = p.note // "" is the whole document: hide nothing else
	}
	report(n, path, "unknown YAML tag %s: a spec takes plain values (the tags %s are accepted); remove the tag", structs.ShowValue(n.Tag), strings.Join(specPlainTags, ", "))
}

// strayTags reports the tagged nodes no walker reached (keys, ignored x-
// fields), by line.
func (p *specParser) strayTags() {
	if len(p.tagged) == 0 {
		return
	}
	nodes := make([]*yaml.Node, 0, len(p.tagged))
	for n := range p.tagged {
		nodes = append(nodes, n)
	}
	sort.Slice(nodes, func(i, j int) bool {
		if nodes[i].Line != nodes[j].Line {
			return nodes[i].Line < nodes[j].Line
		}
		return nodes[i].Column < nodes[j].Column
	})
	for _, n := range nodes {
		p.tagError(n, "")
	}
}

// resolve follows aliases and charges the visit to the budget; it returns nil
// once the budget is spent, which every walker treats as "nothing here".
func (p *specParser) resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode; i++ {
		if i > 1000 {
			return nil
		}
		n = n.Alias
	}
	if p.over {
		return nil
	}
	p.budget--
	if p.budget < 0 {
		p.over = true
		p.overErr = &Error{Msg: "the spec expands to too many values through YAML aliases; write it out without so many nested aliases"}
		return nil
	}
	if n != nil && n.Kind == yaml.ScalarNode {
		p.bytes -= len(n.Value)
		if p.bytes < 0 {
			p.over = true
			p.overErr = &Error{Line: n.Line, Column: n.Column, Msg: fmt.Sprintf(
				"the spec is too large once its YAML aliases are expanded: its values add up to more than the %d bytes allowed (%d × the server's -limit-spec-bytes %d); write the reused values out fewer times, or split the pipeline",
				p.lim.ExpandedBytes(), specExpandFactor, p.lim.SpecBytes)}
			return nil
		}
	}
	return n
}

// fail records a problem with the value at path; problems the validator
// finds later at or under that path are not reported a second time.
func (p *specParser) fail(n *yaml.Node, path, format string, args ...any) {
	p.note(n, path, format, args...)
	p.bad[path] = true
}

// note records a problem without hiding later ones under the same path.
func (p *specParser) note(n *yaml.Node, path, format string, args ...any) {
	e := &Error{Field: path, Msg: fmt.Sprintf(format, args...)}
	if n != nil {
		e.Line, e.Column = n.Line, n.Column
	} else {
		e.Line, e.Column = p.locate(path)
	}
	p.errs = append(p.errs, e)
}

func (p *specParser) at(path string, n *yaml.Node) {
	if n != nil {
		p.pos[path] = specPos{n.Line, n.Column}
		p.tagError(n, path)
	}
}

// locate returns where the field at path, or its nearest written ancestor, is.
func (p *specParser) locate(path string) (line, col int) {
	for {
		if pos, ok := p.pos[path]; ok {
			return pos.line, pos.col
		}
		if path == "" {
			return 0, 0
		}
		path = specParentPath(path)
	}
}

func (p *specParser) isBad(path string) bool {
	for {
		if p.bad[path] {
			return true
		}
		if path == "" {
			return false
		}
		path = specParentPath(path)
	}
}

// specKV is one key and value of a mapping.
type specKV struct{ key, val *yaml.Node }

// fields returns the key/value pairs of the mapping n in order, with YAML
// merge keys (<<: *anchor) expanded in place, and reports keys that are not
// scalars or are written twice. noun names what the keys are ("field", "job").
func (p *specParser) fields(n *yaml.Node, path, noun string) []specKV {
	return p.flatten(n, path, noun, 0, true)
}

func (p *specParser) flatten(n *yaml.Node, path, noun string, depth int, report bool) []specKV {
	explicit := map[string]*yaml.Node{}
	keys := make([]*yaml.Node, len(n.Content)/2)
	for i := range keys {
		k := p.resolve(n.Content[2*i])
		if k == nil {
			continue
		}
		if k.Kind != yaml.ScalarNode {
			if report {
				p.note(k, path, "expected a %s name, got %s", noun, specGot(k))
			}
			continue
		}
		if specIsMerge(k) {
			keys[i] = k
			continue
		}
		if first, dup := explicit[k.Value]; dup {
			if report {
				p.note(k, specPath(path, k.Value), "duplicate %s %s (first at line %d)", noun, structs.ShowValue(k.Value), first.Line)
			}
			continue
		}
		explicit[k.Value] = k
		keys[i] = k
	}
	var out []specKV
	merged := map[string]bool{}
	for i, k := range keys {
		if k == nil {
			continue
		}
		v := n.Content[2*i+1]
		if !specIsMerge(k) {
			out = append(out, specKV{k, v})
			continue
		}
		for _, kv := range p.mergeSources(v, path, noun, depth) {
			if explicit[kv.key.Value] != nil || merged[kv.key.Value] {
				continue // explicit keys win, then earlier merge sources
			}
			merged[kv.key.Value] = true
			out = append(out, kv)
		}
	}
	return out
}

// mergeSources returns the pairs a merge key brings in: those of a mapping,
// or of each mapping of a list.
func (p *specParser) mergeSources(v *yaml.Node, path, noun string, depth int) []specKV {
	v = p.resolve(v)
	if v == nil || specIsNull(v) {
		return nil
	}
	if depth >= 8 {
		p.note(v, path, "YAML merge keys (<<) nested more than 8 deep, or a mapping merged into itself")
		return nil
	}
	switch v.Kind {
	case yaml.MappingNode:
		return p.flatten(v, path, noun, depth+1, false)
	case yaml.SequenceNode:
		var out []specKV
		for _, item := range v.Content {
			item = p.resolve(item)
			if item == nil {
				continue
			}
			if item.Kind != yaml.MappingNode {
				p.note(item, path, "a merge key (<<) takes a mapping or a list of mappings, got %s", specGot(item))
				continue
			}
			out = append(out, p.flatten(item, path, noun, depth+1, false)...)
		}
		return out
	}
	p.note(v, path, "a merge key (<<) takes a mapping or a list of mappings, got %s", specGot(v))
	return nil
}

func specIsMerge(k *yaml.Node) bool {
	return k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge"
}
