// Package linewriter turns a driver's output stream into log lines: the
// io.Writer a container's or a Pod's exec stream is copied into, and the
// reader of a local process's pipe (CopyFrom). It imports only drivers.
package linewriter

import (
	"bytes"
	"io"
	"time"
	"unicode/utf8"

	"github.com/ciplat/ciplat/drivers"
)

// MaxLineBytes is the longest line a Writer emits in one piece. A
// longer line arrives as several lines of at most this many bytes, so one
// runaway line (a minified file, a progress bar redrawn with '\r') cannot
// grow the agent's memory without bound.
const MaxLineBytes = 64 << 10

// Writer is the io.Writer one output stream is copied into: it
// sends each complete line to sink, without its "\n" or "\r\n", stamped
// with the time its newline arrived. A line longer than max bytes is sent
// in pieces cut before an incomplete UTF-8 sequence. Flush sends a final
// line without a newline. It is not safe for concurrent use: copy each
// stream from one goroutine.
type Writer struct {
	stream drivers.Stream
	sink   drivers.LogSink
	max    int
	buf    []byte
	split  bool // part of the pending line was emitted already
	now    func() time.Time
}

// New returns a Writer for stream with the default maximum.
func New(stream drivers.Stream, sink drivers.LogSink) *Writer {
	return &Writer{stream: stream, sink: sink, max: MaxLineBytes, now: time.Now}
}

// SetMax sets the longest line emitted in one piece (tests use small ones).
func (w *Writer) SetMax(n int) { w.max = n }

// Write emits the lines p completes and keeps the rest. It never fails.
func (w *Writer) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			w.buf = append(w.buf, p...)
			w.cutLong()
			break
		}
		w.buf = append(w.buf, p[:i]...)
		if k := len(w.buf); k > 0 && w.buf[k-1] == '\r' {
			w.buf = w.buf[:k-1]
		}
		w.cutLong()
		if !w.split || len(w.buf) > 0 {
			w.emit(w.buf)
		}
		w.buf, w.split = w.buf[:0], false
		p = p[i+1:]
	}
	return n, nil
}

// CopyFrom reads r into w until EOF or a read error, then flushes, so a
// final line without a newline is emitted too. Each line is emitted as soon
// as its newline is read, not when the stream ends. It returns nil at EOF
// and the read error otherwise, having emitted all it read either way.
func (w *Writer) CopyFrom(r io.Reader) error {
	_, err := io.Copy(w, r)
	w.Flush()
	return err
}

// cutLong emits pieces of max bytes while the pending line is longer than
// that, so a line of exactly max bytes is still one line.
func (w *Writer) cutLong() {
	for len(w.buf) > w.max {
		cut := cutPoint(w.buf[:w.max])
		w.emit(w.buf[:cut])
		w.buf = append(w.buf[:0], w.buf[cut:]...)
		w.split = true
	}
}

// Flush emits a pending line that has no newline.
func (w *Writer) Flush() {
	if len(w.buf) > 0 {
		line := w.buf
		if k := len(line); line[k-1] == '\r' {
			line = line[:k-1]
		}
		if len(line) > 0 {
			w.emit(line)
		}
		w.buf, w.split = w.buf[:0], false
	}
}

func (w *Writer) emit(b []byte) {
	w.sink.Emit(drivers.LogLine{Time: w.now(), Stream: w.stream, Line: string(b)})
}

// cutPoint returns where to cut b, a piece of a line that goes on: before
// a trailing '\r' (it may begin "\r\n") and before an incomplete UTF-8
// sequence at the end, or at len(b) when that would leave nothing.
func cutPoint(b []byte) int {
	end := len(b)
	if b[end-1] == '\r' {
		end--
	}
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
