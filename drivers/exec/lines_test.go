package exec

import (
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
	"unicode/utf8"
)

// collect runs readLines over in with max and returns what it emitted.
func collect(t *testing.T, r io.Reader, max int) ([]string, error) {
	t.Helper()
	var got []string
	err := readLines(r, max, func(s string) { got = append(got, s) })
	return got, err
}

func TestReadLines(t *testing.T) {
	const max = 8
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{"empty input", "", nil},
		{"lines", "a\nbc\n", []string{"a", "bc"}},
		{"empty lines", "\n\n", []string{"", ""}},
		{"final line without newline", "a\nlast", []string{"a", "last"}},
		{"crlf", "a\r\nb\r\n", []string{"a", "b"}},
		{"lone cr inside a line", "a\rb\n", []string{"a\rb"}},
		{"cr at eof", "a\r", []string{"a"}},
		{"exactly max", "12345678\n", []string{"12345678"}},
		{"exactly max with crlf", "1234567\r\n", []string{"1234567"}},
		{"max plus one", "123456789\n", []string{"12345678", "9"}},
		{"long line", strings.Repeat("x", 20) + "\nnext\n", []string{"xxxxxxxx", "xxxxxxxx", "xxxx", "next"}},
		{"long final line", strings.Repeat("y", 17), []string{"yyyyyyyy", "yyyyyyyy", "y"}},
		{"cut before a rune", "1234567é\n", []string{"1234567", "é"}},
		{"cut before a 4-byte rune", "123456😀\n", []string{"123456", "😀"}},
		{"long line, cr cut", "1234567\rz\n", []string{"1234567", "\rz"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, r := range []struct {
				name string
				r    io.Reader
			}{
				{"whole", strings.NewReader(tt.in)},
				{"byte by byte", iotest.OneByteReader(strings.NewReader(tt.in))},
			} {
				got, err := collect(t, r.r, max)
				if err != nil {
					t.Fatalf("%s: error %v", r.name, err)
				}
				if !slices.Equal(got, tt.want) {
					t.Errorf("%s: got %q, want %q", r.name, got, tt.want)
				}
			}
		})
	}
}

func TestReadLines_maxLineBytes(t *testing.T) {
	long := strings.Repeat("é", maxLineBytes) // 2 bytes each: 2*max bytes
	got, err := collect(t, strings.NewReader("head\n"+long+"\ntail"), maxLineBytes)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 4 || got[0] != "head" || got[3] != "tail" {
		t.Fatalf("got %d lines, want head, 2 pieces, tail", len(got))
	}
	for _, p := range got[1:3] {
		if len(p) > maxLineBytes || !utf8.ValidString(p) {
			t.Errorf("piece of %d bytes, valid UTF-8 %v; want <= %d, valid", len(p), utf8.ValidString(p), maxLineBytes)
		}
	}
	if got[1]+got[2] != long {
		t.Error("pieces do not join into the original line")
	}
}

func TestReadLines_readError(t *testing.T) {
	boom := errors.New("boom")
	r := io.MultiReader(strings.NewReader("a\npartial"), iotest.ErrReader(boom))
	got, err := collect(t, r, 64)
	if !errors.Is(err, boom) {
		t.Errorf("err = %v, want boom", err)
	}
	if want := []string{"a", "partial"}; !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

// TestReadLines_streams checks that a line is emitted as soon as its newline
// is read, not when the stream ends.
func TestReadLines_streams(t *testing.T) {
	pr, pw := io.Pipe()
	lines := make(chan string)
	done := make(chan error)
	go func() { done <- readLines(pr, 64, func(s string) { lines <- s }) }()
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

// FuzzReadLines checks, for input without '\r', that no piece is longer than
// max and that the pieces join into the input without its newlines.
func FuzzReadLines(f *testing.F) {
	for _, s := range []string{"", "a\nb", "123456789\n", "1234567é\n\n", "😀😀😀\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		if strings.Contains(in, "\r") {
			t.Skip()
		}
		const max = 9
		got, err := collect(t, iotest.HalfReader(strings.NewReader(in)), max)
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
