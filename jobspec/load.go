package jobspec

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// specLoad turns the submitted bytes into one document node. Valid JSON is
// read with encoding/json (exact JSON semantics: escapes such as \/ and
// surrogate pairs, which YAML lacks); anything else with yaml.v3.
func specLoad(data []byte) (*yaml.Node, Errors) {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	empty := Errors{{Msg: "the spec is empty: expected a YAML or JSON document with name and jobs"}}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, empty
	}
	if json.Valid(data) {
		if n, err := specJSONNode(data); err == nil {
			return n, nil
		}
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := specYAMLDecode(dec, &doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, empty
		}
		return nil, Errors{specYAMLError(err, data)}
	}
	if specEmptyDoc(&doc) {
		return nil, empty
	}
	for {
		var next yaml.Node
		err := specYAMLDecode(dec, &next)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, Errors{specYAMLError(err, data)}
		}
		if specEmptyDoc(&next) {
			continue // a trailing "---"
		}
		return nil, Errors{{Line: next.Line, Column: next.Column,
			Msg: "found a second YAML document (after ---): a spec holds exactly one pipeline"}}
	}
	return doc.Content[0], nil
}

// specYAMLDecode decodes one document, turning a panic inside yaml.v3 into an
// error: no input may crash the server.
func specYAMLDecode(dec *yaml.Decoder, n *yaml.Node) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("yaml: cannot parse this document (%v)", r)
		}
	}()
	return dec.Decode(n)
}

func specEmptyDoc(doc *yaml.Node) bool {
	if len(doc.Content) == 0 {
		return true
	}
	c := doc.Content[0]
	return c.Kind == yaml.ScalarNode && c.ShortTag() == "!!null" && c.Value == "" && c.Anchor == ""
}

var (
	specYAMLLine   = regexp.MustCompile(`^line (\d+): `)
	specYAMLAnchor = regexp.MustCompile(`^unknown anchor '(.*)' referenced$`)
)

// specYAMLParserErrors are the messages of yaml.v3's parser (not its
// scanner): it reports their line 0-based, and leaves out line 0.
var specYAMLParserErrors = []string{
	"did not find expected <stream-start>",
	"did not find expected <document start>",
	"did not find expected node content",
	"did not find expected '-' indicator",
	"did not find expected key",
	"did not find expected ',' or ']'",
	"did not find expected ',' or '}'",
	"found undefined tag handle",
	"found duplicate %YAML directive",
	"found incompatible YAML document",
	"found duplicate %TAG directive",
}

// specYAMLError turns "yaml: line 3: mapping values are not allowed in this
// context" into a Error at line 3, finding the line itself for the
// errors yaml.v3 gives none.
func specYAMLError(err error, data []byte) *Error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	e := &Error{}
	if m := specYAMLLine.FindStringSubmatch(msg); m != nil {
		e.Line, _ = strconv.Atoi(m[1])
		msg = msg[len(m[0]):]
	}
	if specContains(specYAMLParserErrors, msg) {
		// The line is where the enclosing block starts; find the line that
		// breaks it.
		from := e.Line + 1
		e.Line = specFirstFailingLine(data, msg, from)
		if len(data) > specRefineMax && from > 1 {
			msg += " in the block that starts at this line"
		}
	}
	if e.Line == 0 {
		e.Line, e.Column = specFindBadText(data, msg)
	}
	e.Msg = "invalid YAML: " + msg + specYAMLHint(data, e.Line, msg)
	return e
}

// specRefineMax is the largest document whose YAML errors are located by
// parsing its prefixes (a few dozen parses at most).
const specRefineMax = 256 << 10

// specFirstFailingLine returns the first line from which the document,
// cut after that line, fails to parse with msg: where a block mapping or
// list goes wrong, rather than where it starts. Cutting YAML at a line end
// leaves block structures valid, so failure grows with the cut and a binary
// search finds the line.
func specFirstFailingLine(data []byte, msg string, from int) int {
	var ends []int // ends[i] is the offset just after line i+1
	for i, c := range data {
		if c == '\n' {
			ends = append(ends, i+1)
		}
	}
	if len(ends) == 0 || ends[len(ends)-1] != len(data) {
		ends = append(ends, len(data))
	}
	if from < 1 || from > len(ends) || len(data) > specRefineMax {
		return from
	}
	fails := func(line int) bool {
		dec := yaml.NewDecoder(bytes.NewReader(data[:ends[line-1]]))
		for {
			var n yaml.Node
			err := specYAMLDecode(dec, &n)
			if err == nil {
				continue
			}
			if errors.Is(err, io.EOF) {
				return false
			}
			m := strings.TrimPrefix(err.Error(), "yaml: ")
			if l := specYAMLLine.FindString(m); l != "" {
				m = m[len(l):]
			}
			return m == msg
		}
	}
	lo, hi := from, len(ends) // the answer is in [lo, hi]
	for lo < hi {
		mid := lo + (hi-lo)/2
		if fails(mid) {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return lo
}

// specYAMLHint adds what usually causes a YAML error.
func specYAMLHint(data []byte, line int, msg string) string {
	switch {
	case strings.Contains(msg, "cannot start any token") && bytes.Contains(specLine(data, line), []byte("\t")):
		return " (YAML indents with spaces, not tabs)"
	case strings.HasPrefix(msg, "did not find expected key") || strings.HasPrefix(msg, "did not find expected '-' indicator"):
		if strings.HasSuffix(msg, "starts at this line") {
			return " (check the indentation of the lines below it)"
		}
		return " (check the indentation of this line against the lines above)"
	case strings.HasPrefix(msg, "mapping values are not allowed"):
		return " (quote a value that contains \": \", e.g. run: \"echo a: b\")"
	}
	return ""
}

// specLine returns line n (1-based) of data, or nil.
func specLine(data []byte, n int) []byte {
	for i := 1; n > 0 && len(data) > 0; i++ {
		line, rest, _ := bytes.Cut(data, []byte("\n"))
		if i == n {
			return line
		}
		data = rest
	}
	return nil
}

// specFindBadText finds where the text yaml.v3 refused without saying where
// is: invalid UTF-8, a control character, an alias of an unknown anchor.
func specFindBadText(data []byte, msg string) (line, col int) {
	bad := -1
	switch {
	case strings.Contains(msg, "UTF-8"):
		for i := 0; i < len(data); {
			r, size := utf8.DecodeRune(data[i:])
			if r == utf8.RuneError && size <= 1 {
				bad = i
				break
			}
			i += size
		}
	case strings.Contains(msg, "control characters"):
		for i, r := range string(data) {
			if !specYAMLPrintable(r) {
				bad = i
				break
			}
		}
	default:
		if m := specYAMLAnchor.FindStringSubmatch(msg); m != nil {
			bad = bytes.Index(data, []byte("*"+m[1]))
		}
	}
	if bad < 0 {
		return 0, 0
	}
	line, col = 1, 1
	for _, r := range string(data[:bad]) {
		if r == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
	}
	return line, col
}

// specYAMLPrintable reports whether YAML allows r in a document.
func specYAMLPrintable(r rune) bool {
	switch {
	case r == '\t' || r == '\n' || r == '\r' || r == 0x85:
		return true
	case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0):
		return false
	case r >= 0xd800 && r <= 0xdfff, r == 0xfffe, r == 0xffff:
		return false
	}
	return true
}
