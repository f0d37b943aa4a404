package drivertest

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/ciplat/ciplat/drivers"
)

// Recorder is a drivers.LogSink that keeps every line and lets a test wait
// for a line to arrive, without sleeping. It is safe for concurrent use.
type Recorder struct {
	mu      sync.Mutex
	lines   []drivers.LogLine
	changed chan struct{} // closed and replaced on every Emit
	sealed  bool
	late    int
}

var _ drivers.LogSink = (*Recorder)(nil)

// NewRecorder returns an empty Recorder.
func NewRecorder() *Recorder { return &Recorder{changed: make(chan struct{})} }

// Emit records l and wakes Wait.
func (r *Recorder) Emit(l drivers.LogLine) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lines = append(r.lines, l)
	if r.sealed {
		r.late++
	}
	close(r.changed)
	r.changed = make(chan struct{})
}

// Lines returns a copy of the lines recorded so far, in arrival order.
func (r *Recorder) Lines() []drivers.LogLine {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]drivers.LogLine(nil), r.lines...)
}

// Texts returns the text of the lines of one stream, in arrival order.
func (r *Recorder) Texts(s drivers.Stream) []string {
	var out []string
	for _, l := range r.Lines() {
		if l.Stream == s {
			out = append(out, l.Line)
		}
	}
	return out
}

// Wait returns the first recorded line that match accepts, waiting for it
// until ctx ends.
func (r *Recorder) Wait(ctx context.Context, match func(drivers.LogLine) bool) (drivers.LogLine, error) {
	seen := 0
	for {
		r.mu.Lock()
		lines, changed := r.lines[seen:], r.changed
		seen = len(r.lines)
		r.mu.Unlock()
		for _, l := range lines {
			if match(l) {
				return l, nil
			}
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return drivers.LogLine{}, fmt.Errorf("no matching line after %d lines: %w", seen, ctx.Err())
		}
	}
}

// WaitLine waits until text has arrived on stream.
func (r *Recorder) WaitLine(ctx context.Context, stream drivers.Stream, text string) error {
	_, err := r.Wait(ctx, func(l drivers.LogLine) bool { return l.Stream == stream && l.Line == text })
	return err
}

// Seal marks the moment RunStep returned: a driver must not emit after it,
// and Late counts the lines that still came.
func (r *Recorder) Seal() {
	r.mu.Lock()
	r.sealed = true
	r.mu.Unlock()
}

// Late returns how many lines arrived after Seal.
func (r *Recorder) Late() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.late
}

// String renders the recorded lines, for failure messages.
func (r *Recorder) String() string {
	var b strings.Builder
	for _, l := range r.Lines() {
		fmt.Fprintf(&b, "\n  %s %s| %s", l.Time.Format("15:04:05.000000"), l.Stream, l.Line)
	}
	if b.Len() == 0 {
		return " (no output)"
	}
	return b.String()
}
