package jobspec

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// specJSONNode builds the yaml.Node tree of a valid JSON document with
// encoding/json, so JSON keeps its exact meaning (YAML lacks the \/ escape
// and surrogate pairs, limits keys to 1024 characters and folds a raw U+0085
// inside strings) while every node still carries its line and column.
func specJSONNode(data []byte) (n *yaml.Node, err error) {
	defer func() {
		if r := recover(); r != nil {
			n, err = nil, fmt.Errorf("json: %v", r)
		}
	}()
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	r := &specJSONReader{data: data, dec: dec, line: 1, col: 1}
	return r.value()
}

// specJSONReader tracks the line and column of the decoder's position; tokens
// come in order, so the cursor only moves forward.
type specJSONReader struct {
	data      []byte
	dec       *json.Decoder
	off       int
	line, col int
}

// next returns the position of the next token.
func (r *specJSONReader) next() (line, col int) {
	target := int(r.dec.InputOffset())
	for target < len(r.data) && strings.IndexByte(" \t\r\n,:", r.data[target]) >= 0 {
		target++
	}
	for r.off < target {
		if r.data[r.off] == '\n' {
			r.line, r.col = r.line+1, 1
			r.off++
			continue
		}
		_, size := utf8.DecodeRune(r.data[r.off:])
		r.off += size
		r.col++
	}
	return r.line, r.col
}

func (r *specJSONReader) value() (*yaml.Node, error) {
	line, col := r.next()
	tok, err := r.dec.Token()
	if err != nil {
		return nil, err
	}
	n := &yaml.Node{Line: line, Column: col}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			n.Kind, n.Tag, n.Style = yaml.MappingNode, "!!map", yaml.FlowStyle
			for r.dec.More() {
				kl, kc := r.next()
				kt, err := r.dec.Token()
				if err != nil {
					return nil, err
				}
				ks, _ := kt.(string)
				k := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Style: yaml.DoubleQuotedStyle, Value: ks, Line: kl, Column: kc}
				v, err := r.value()
				if err != nil {
					return nil, err
				}
				n.Content = append(n.Content, k, v)
			}
		case '[':
			n.Kind, n.Tag, n.Style = yaml.SequenceNode, "!!seq", yaml.FlowStyle
			for r.dec.More() {
				v, err := r.value()
				if err != nil {
					return nil, err
				}
				n.Content = append(n.Content, v)
			}
		default:
			return nil, fmt.Errorf("json: unexpected %v", t)
		}
		if _, err := r.dec.Token(); err != nil { // the closing } or ]
			return nil, err
		}
	case string:
		n.Kind, n.Tag, n.Style, n.Value = yaml.ScalarNode, "!!str", yaml.DoubleQuotedStyle, t
	case json.Number:
		n.Kind, n.Tag, n.Value = yaml.ScalarNode, "!!int", string(t)
		if strings.ContainsAny(string(t), ".eE") {
			n.Tag = "!!float"
		}
	case bool:
		n.Kind, n.Tag, n.Value = yaml.ScalarNode, "!!bool", fmt.Sprint(t)
	case nil:
		n.Kind, n.Tag, n.Value = yaml.ScalarNode, "!!null", "null"
	}
	return n, nil
}
