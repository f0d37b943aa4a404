package exec

import (
	"bytes"
	"io"
	"unicode/utf8"
)

// maxLineBytes is the longest line readLines emits in one piece. A longer
// line arrives as several lines of at most this many bytes, so one runaway
// line (a minified file, a progress bar redrawn with '\r') cannot grow the
// agent's memory without bound.
const maxLineBytes = 64 << 10

// readLines reads r until EOF or a read error and calls emit once per line,
// as soon as the line is complete, without its "\n" or "\r\n". A final line
// without a newline is emitted at EOF. A line longer than max bytes is
// emitted in pieces of at most max bytes, each cut before an incomplete
// UTF-8 sequence or a '\r' that may begin "\r\n", so no piece ends in half
// a character; a line of exactly max bytes does not produce an extra empty
// piece.
//
// It uses one buffer of max bytes for the whole stream. It returns nil at
// EOF and the read error otherwise, having emitted all it read either way.
// emit is called from the calling goroutine only.
func readLines(r io.Reader, max int, emit func(string)) error {
	if max < 2*utf8.UTFMax {
		max = 2 * utf8.UTFMax
	}
	buf := make([]byte, max)
	start, end := 0, 0 // buf[start:end] is the current line so far, without '\n'
	split := false     // part of the current line was emitted already
	for {
		if end == len(buf) { // start > 0 here: a full line would have been cut
			end = copy(buf, buf[start:end])
			start = 0
		}
		n, err := r.Read(buf[end:])
		scan := end
		end += n
		for {
			i := bytes.IndexByte(buf[scan:end], '\n')
			if i < 0 {
				break
			}
			nl := scan + i
			if line := trimCR(buf[start:nl]); !split || len(line) > 0 {
				emit(string(line))
			}
			split = false
			start, scan = nl+1, nl+1
		}
		if end-start == max { // as long as the buffer and still no '\n'
			cut := cutPoint(buf[start:end])
			emit(string(buf[start : start+cut]))
			split = true
			start += cut
		}
		if err != nil {
			if line := trimCR(buf[start:end]); len(line) > 0 {
				emit(string(line))
			}
			if err == io.EOF {
				return nil
			}
			return err
		}
	}
}

// trimCR removes one trailing '\r'.
func trimCR(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\r' {
		return b[:n-1]
	}
	return b
}

// cutPoint returns where to cut b, a full buffer without '\n': before a
// trailing '\r' and before an incomplete UTF-8 sequence at the end, or at
// len(b) when that would leave nothing.
func cutPoint(b []byte) int {
	end := len(b)
	if b[end-1] == '\r' {
		end--
	}
	// The last rune starts at most UTFMax-1 bytes before end.
	for i := end - 1; i >= 0 && i > end-utf8.UTFMax; i-- {
		if utf8.RuneStart(b[i]) {
			if !utf8.FullRune(b[i:end]) {
				end = i
			}
			break
		}
	}
	if end == 0 {
		return len(b)
	}
	return end
}
