package server

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sync"

	"github.com/ciplat/ciplat/api"
)

// LogStore keeps step output, one append-only NDJSON file per job under its
// directory, and wakes followers when lines arrive. Entries get a per-job
// sequence number (Seq, from 1) so a follower can resume.
//
// It is not replicated: in a cluster, clients push logs to the leader.
// All methods are safe for concurrent use.
type LogStore struct {
	dir string

	mu     sync.Mutex
	jobs   map[string]*jobLog
	closed bool
}

type jobLog struct {
	mu     sync.Mutex
	path   string
	seq    uint64
	loaded bool
	// offsets[i] is the byte offset of the entry with Seq i+1; size the file's.
	offsets []int64
	size    int64
	// notify is closed and replaced on every append.
	notify chan struct{}
}

var safeID = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,128}$`)

// NewLogStore opens (creating) dir.
func NewLogStore(dir string) (*LogStore, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create log dir: %w", err)
	}
	return &LogStore{dir: dir, jobs: map[string]*jobLog{}}, nil
}

// Close marks the store closed; later appends fail.
func (l *LogStore) Close() {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
}

func (l *LogStore) job(jobID string) (*jobLog, error) {
	if !safeID.MatchString(jobID) {
		return nil, fmt.Errorf("invalid job id %q", jobID)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, errors.New("log store closed")
	}
	j := l.jobs[jobID]
	if j == nil {
		j = &jobLog{path: filepath.Join(l.dir, jobID+".ndjson"), notify: make(chan struct{})}
		l.jobs[jobID] = j
	}
	return j, nil
}

// load counts the lines already on disk (after a restart) once.
func (j *jobLog) load() error {
	if j.loaded {
		return nil
	}
	f, err := os.Open(j.path)
	if errors.Is(err, os.ErrNotExist) {
		j.loaded = true
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	r := bufio.NewReader(f)
	for {
		line, err := r.ReadBytes('\n')
		if len(line) > 0 && line[len(line)-1] == '\n' {
			j.offsets = append(j.offsets, j.size)
			j.seq++
			j.size += int64(len(line))
		}
		if err != nil {
			break
		}
	}
	j.loaded = true
	return nil
}

// Append stores entries of one job in order and wakes its followers.
func (l *LogStore) Append(jobID string, entries []*api.LogEntry) error {
	j, err := l.job(jobID)
	if err != nil {
		return err
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if err := j.load(); err != nil {
		return err
	}
	f, err := os.OpenFile(j.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	seq := j.seq
	offsets := make([]int64, 0, len(entries))
	for _, e := range entries {
		seq++
		e.Seq = seq
		offsets = append(offsets, j.size+int64(buf.Len()))
		if err := enc.Encode(e); err != nil {
			f.Close()
			return err
		}
	}
	if _, err := f.Write(buf.Bytes()); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	j.seq = seq
	j.size += int64(buf.Len())
	j.offsets = append(j.offsets, offsets...)
	close(j.notify)
	j.notify = make(chan struct{})
	return nil
}

// Read returns the job's entries with Seq > after (optionally only one
// step's), the newest Seq it looked at (resume from there), and a channel
// closed when more entries arrive.
func (l *LogStore) Read(jobID, step string, after uint64) ([]*api.LogEntry, uint64, <-chan struct{}, error) {
	j, err := l.job(jobID)
	if err != nil {
		return nil, after, nil, err
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if err := j.load(); err != nil {
		return nil, after, nil, err
	}
	notify := j.notify
	if j.seq <= after {
		return nil, after, notify, nil
	}
	f, err := os.Open(j.path)
	if err != nil {
		return nil, after, nil, err
	}
	defer f.Close()
	if _, err := f.Seek(j.offsets[after], io.SeekStart); err != nil {
		return nil, after, nil, err
	}
	var out []*api.LogEntry
	sc := bufio.NewScanner(io.LimitReader(f, j.size-j.offsets[after]))
	sc.Buffer(make([]byte, 64*1024), 8*1024*1024)
	n := after
	for sc.Scan() {
		n++
		var e api.LogEntry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return nil, after, nil, fmt.Errorf("log file %s line %d: %w", j.path, n, err)
		}
		if step == "" || e.Step == step {
			out = append(out, &e)
		}
	}
	return out, n, notify, sc.Err()
}
