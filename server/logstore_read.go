package server

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/ciplat/ciplat/api"
)

// CopyAfter streams the raw NDJSON of jobID's entries with Seq > after, as
// they stood when it was called, to w through buf (its only buffer: memory
// stays bounded whatever the file's size). It returns the newest Seq it
// copied up to (resume from there). A job without logs copies nothing.
func (l *LogStore) CopyAfter(w io.Writer, buf []byte, jobID string, after uint64) (uint64, error) {
	f, start, end, seq, err := l.openAfter(jobID, after)
	if err != nil || f == nil {
		return seq, err
	}
	defer f.Close()
	if _, err := f.Seek(start, io.SeekStart); err != nil {
		return after, err
	}
	if _, err := io.CopyBuffer(onlyWriter{w}, io.LimitReader(onlyReader{f}, end-start), buf); err != nil {
		return after, err
	}
	return seq, nil
}

// ScanAfter calls fn with each entry of jobID with Seq > after (as they stood
// when it was called) and its raw NDJSON line (without the newline; valid
// only during the call), reading the file through one bounded buffer. It
// returns the newest Seq it looked at.
func (l *LogStore) ScanAfter(jobID string, after uint64, fn func(e *api.LogEntry, raw []byte) error) (uint64, error) {
	f, start, end, seq, err := l.openAfter(jobID, after)
	if err != nil || f == nil {
		return seq, err
	}
	defer f.Close()
	if _, err := f.Seek(start, io.SeekStart); err != nil {
		return after, err
	}
	sc := bufio.NewScanner(io.LimitReader(f, end-start))
	sc.Buffer(make([]byte, 64*1024), logLineMaxRead)
	n := after
	var e api.LogEntry
	for sc.Scan() {
		n++
		e = api.LogEntry{}
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return after, fmt.Errorf("log file of job %s entry %d: %w", jobID, n, err)
		}
		if err := fn(&e, sc.Bytes()); err != nil {
			return after, err
		}
	}
	if err := sc.Err(); err != nil {
		return after, err
	}
	return seq, nil
}

// TailAfter returns the Seq after which the last n entries of jobID that
// match accepts (all when match is nil) begin: resume a read from there to
// get them. Without match it is arithmetic on the sequence numbers; with
// match it reads the file backwards in chunks of logTailChunk, decoding
// line by line, so memory stays bounded (one chunk and one line) however
// large the log and however far back the n-th match lies.
func (l *LogStore) TailAfter(jobID string, n int, match func(*api.LogEntry) bool) (uint64, error) {
	j, err := l.lockJob(jobID)
	if err != nil {
		return 0, err
	}
	seq, end := j.seq, j.size
	j.mu.Unlock()
	if match == nil || n <= 0 {
		return seq - min(seq, uint64(max(n, 0))), nil
	}
	if seq == 0 {
		return 0, nil
	}
	f, err := os.Open(j.path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	buf := make([]byte, logTailChunk)
	var rest []byte // the end of a line that began in an earlier chunk
	found := 0
	var e api.LogEntry
	// check decodes one line; done when it is the n-th match from the end.
	check := func(line []byte) (uint64, bool, error) {
		e = api.LogEntry{}
		if err := json.Unmarshal(line, &e); err != nil {
			return 0, false, fmt.Errorf("log file of job %s: %w", jobID, err)
		}
		if match(&e) {
			found++
			if found == n {
				return e.Seq - 1, true, nil
			}
		}
		return 0, false, nil
	}
	for pos := end; pos > 0; {
		k := min(int64(len(buf)), pos)
		pos -= k
		chunk := buf[:k]
		if _, err := f.ReadAt(chunk, pos); err != nil {
			return 0, err
		}
		for {
			i := bytes.LastIndexByte(chunk, '\n')
			if i < 0 {
				if len(rest)+len(chunk) > logLineMaxRead {
					return 0, fmt.Errorf("log file of job %s: a line over %d bytes", jobID, logLineMaxRead)
				}
				rest = append(append(make([]byte, 0, len(chunk)+len(rest)), chunk...), rest...)
				break
			}
			line := chunk[i+1:]
			if len(rest) > 0 {
				line = append(append(make([]byte, 0, len(line)+len(rest)), line...), rest...)
				rest = nil
			}
			if len(line) > 0 {
				if after, ok, err := check(line); err != nil || ok {
					return after, err
				}
			}
			chunk = chunk[:i]
		}
	}
	if len(rest) > 0 {
		if after, ok, err := check(rest); err != nil || ok {
			return after, err
		}
	}
	return 0, nil
}

// openAfter opens jobID's file at the entry after `after`: the byte range
// [start, end) holds the entries after+1..seq. f is nil when there is
// nothing to read.
func (l *LogStore) openAfter(jobID string, after uint64) (f *os.File, start, end int64, seq uint64, err error) {
	j, err := l.lockJob(jobID)
	if err != nil {
		return nil, 0, 0, after, err
	}
	seq, end = j.seq, j.size
	if seq <= after {
		j.mu.Unlock()
		return nil, 0, 0, after, nil
	}
	k := after / logIndexEvery
	start = j.index[k]
	skip := after - k*logIndexEvery
	f, err = os.Open(j.path)
	j.mu.Unlock()
	if err != nil {
		return nil, 0, 0, after, err
	}
	if skip > 0 {
		// Skip lines up to the first wanted entry, reading through one
		// bounded buffer.
		if _, err := f.Seek(start, io.SeekStart); err != nil {
			f.Close()
			return nil, 0, 0, after, err
		}
		r := bufio.NewReaderSize(io.LimitReader(f, end-start), 32*1024)
		for ; skip > 0; skip-- {
			for {
				line, err := r.ReadSlice('\n')
				start += int64(len(line))
				if err == nil {
					break
				}
				if !errors.Is(err, bufio.ErrBufferFull) {
					f.Close()
					return nil, 0, 0, after, fmt.Errorf("log file of job %s: %w", jobID, err)
				}
			}
		}
	}
	return f, start, end, seq, nil
}

// onlyWriter and onlyReader hide ReadFrom/WriteTo so io.CopyBuffer uses the
// caller's buffer (and every write goes through the caller's writer, which
// sets the write deadline).
type onlyWriter struct{ io.Writer }

type onlyReader struct{ io.Reader }
