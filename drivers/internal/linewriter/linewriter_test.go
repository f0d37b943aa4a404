package linewriter

import (
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/ciplat/ciplat/drivers"
)

// collect writes the chunks through a Writer with max and returns the
// lines it emitted, flushed.
func collect(max int, chunks ...string) []string {
	var got []string
	w := New(drivers.Stdout, drivers.LogSinkFunc(func(l drivers.LogLine) {
		if l.Time.IsZero() || l.Stream != drivers.Stdout {
			panic("line without time or stream")
		}
		got = append(got, l.Line)
	}))
	w.SetMax(max)
	for _, c := range chunks {
		w.Write([]byte(c))
	}
	w.Flush()
	return got
}

func TestLineWriter(t *testing.T) {
	const max = 8
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{"empty", "", nil},
		{"lines", "a\nbc\n", []string{"a", "bc"}},
		{"empty lines", "\n\n", []string{"", ""}},
		{"final line without newline", "a\nlast", []string{"a", "last"}},
		{"crlf", "a\r\nb\r\n", []string{"a", "b"}},
		{"lone cr inside", "a\rb\n", []string{"a\rb"}},
		{"cr at end", "a\r", []string{"a"}},
		{"exactly max", "12345678\n", []string{"12345678"}},
		{"exactly max with crlf", "12345678\r\n", []string{"12345678"}},
		{"max plus one", "123456789\n", []string{"12345678", "9"}},
		{"long", strings.Repeat("x", 20) + "\nnext\n", []string{"xxxxxxxx", "xxxxxxxx", "xxxx", "next"}},
		{"long final", strings.Repeat("y", 17), []string{"yyyyyyyy", "yyyyyyyy", "y"}},
		{"cut before a rune", "1234567é\n", []string{"1234567", "é"}},
		{"cut before a 4-byte rune", "123456😀\n", []string{"123456", "😀"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := collect(max, tt.in); !slices.Equal(got, tt.want) {
				t.Errorf("whole: got %q, want %q", got, tt.want)
			}
			var bytes []string
			for i := range len(tt.in) {
				bytes = append(bytes, tt.in[i:i+1])
			}
			if got := collect(max, bytes...); !slices.Equal(got, tt.want) {
				t.Errorf("byte by byte: got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestLineWriter_longLineIsValidUTF8(t *testing.T) {
	long := strings.Repeat("é", MaxLineBytes)
	got := collect(MaxLineBytes, "head\n"+long+"\ntail")
	if len(got) != 4 || got[0] != "head" || got[3] != "tail" || got[1]+got[2] != long {
		t.Fatalf("got %d lines, want head, 2 pieces, tail", len(got))
	}
	for _, p := range got[1:3] {
		if len(p) > MaxLineBytes || !utf8.ValidString(p) {
			t.Errorf("piece of %d bytes, valid %v", len(p), utf8.ValidString(p))
		}
	}
}
