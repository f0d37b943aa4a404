package kubernetes

import (
	"bytes"
	"time"
	"unicode/utf8"

	"github.com/ciplat/ciplat/drivers"
)

// This file is a copy of drivers/docker/lines.go (see breaker.go for why).

// maxLineBytes is the longest line a lineWriter emits in one piece. A
// longer line arrives as several lines of at most this many bytes, so one
// runaway line cannot grow the agent's memory without bound (the exec
// driver does the same).
const maxLineBytes = 64 << 10

// lineWriter is the io.Writer an exec stream (stdout or stderr) is copied into: it
// sends each complete line to sink, without its "\n" or "\r\n", stamped
// with the time its newline arrived. A line longer than max bytes is sent
// in pieces cut before an incomplete UTF-8 sequence. Flush sends a final
// line without a newline. It is not safe for concurrent use; the exec
// copies each stream from one goroutine.
type lineWriter struct {
	stream drivers.Stream
	sink   drivers.LogSink
	max    int
	buf    []byte
	split  bool // part of the pending line was emitted already
	now    func() time.Time
}

// newLineWriter returns a lineWriter for stream with the default maximum.
func newLineWriter(stream drivers.Stream, sink drivers.LogSink) *lineWriter {
	return &lineWriter{stream: stream, sink: sink, max: maxLineBytes, now: time.Now}
}

// Write emits the lines p completes and keeps the rest. It never fails.
func (w *lineWriter) Write(p []byte) (int, error) {
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

// cutLong emits pieces of max bytes while the pending line is longer than
// that, so a line of exactly max bytes is still one line.
func (w *lineWriter) cutLong() {
	for len(w.buf) > w.max {
		cut := cutPoint(w.buf[:w.max])
		w.emit(w.buf[:cut])
		w.buf = append(w.buf[:0], w.buf[cut:]...)
		w.split = true
	}
}

// Flush emits a pending line that has no newline.
func (w *lineWriter) Flush() {
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

func (w *lineWriter) emit(b []byte) {
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
