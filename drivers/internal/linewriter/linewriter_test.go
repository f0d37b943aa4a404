package linewriter

import (
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
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
		{"exactly max counting the cr", "1234567\r\n", []string{"1234567"}},
		{"max plus one", "123456789\n", []string{"12345678", "9"}},
		{"long", strings.Repeat("x", 20) + "\nnext\n", []string{"xxxxxxxx", "xxxxxxxx", "xxxx", "next"}},
		{"long final", strings.Repeat("y", 17), []string{"yyyyyyyy", "yyyyyyyy", "y"}},
		{"cut before a rune", "1234567é\n", []string{"1234567", "é"}},
		{"cut before a 4-byte rune", "123456😀\n", []string{"123456", "😀"}},
		{"long line, cr cut", "1234567\rz\n", []string{"1234567", "\rz"}},
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
			for _, r := range []struct {
				name string
				r    io.Reader
			}{
				{"CopyFrom whole", strings.NewReader(tt.in)},
				{"CopyFrom byte by byte", iotest.OneByteReader(strings.NewReader(tt.in))},
			} {
				got, err := copyFrom(r.r, max)
				if err != nil || !slices.Equal(got, tt.want) {
					t.Errorf("%s: got %q, %v; want %q", r.name, got, err, tt.want)
				}
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

// copyFrom runs CopyFrom over r with max and returns what it emitted.
func copyFrom(r io.Reader, max int) ([]string, error) {
	var got []string
	w := New(drivers.Stderr, drivers.LogSinkFunc(func(l drivers.LogLine) { got = append(got, l.Line) }))
	w.SetMax(max)
	err := w.CopyFrom(r)
	return got, err
}

// TestWriter_CopyFrom_readError: a read error ends the copy, after the
// lines read before it, the partial one included.
func TestWriter_CopyFrom_readError(t *testing.T) {
	boom := errors.New("boom")
	got, err := copyFrom(io.MultiReader(strings.NewReader("a\npartial"), iotest.ErrReader(boom)), 64)
	if !errors.Is(err, boom) {
		t.Errorf("err = %v, want boom", err)
	}
	if want := []string{"a", "partial"}; !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

// TestWriter_CopyFrom_streams: a line is emitted as soon as its newline
// is read, not when the stream ends.
func TestWriter_CopyFrom_streams(t *testing.T) {
	pr, pw := io.Pipe()
	lines := make(chan string)
	done := make(chan error)
	w := New(drivers.Stdout, drivers.LogSinkFunc(func(l drivers.LogLine) { lines <- l.Line }))
	go func() { done <- w.CopyFrom(pr) }()
	for _, want := range []string{"one", "two"} {
		go pw.Write([]byte(want + "\n"))
		if got := <-lines; got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
	pw.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// FuzzWriter checks, for input without '\r', that no piece is longer than
// max and that the pieces join into the input without its newlines.
func FuzzWriter(f *testing.F) {
	for _, s := range []string{"", "a\nb", "123456789\n", "1234567é\n\n", "😀😀😀\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		if strings.Contains(in, "\r") {
			t.Skip()
		}
		const max = 9
		got, err := copyFrom(iotest.HalfReader(strings.NewReader(in)), max)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range got {
			if len(p) > max {
				t.Errorf("piece %q longer than %d", p, max)
			}
		}
		if joined, want := strings.Join(got, ""), strings.ReplaceAll(in, "\n", ""); joined != want {
			t.Errorf("joined %q, want %q", joined, want)
		}
	})
}
