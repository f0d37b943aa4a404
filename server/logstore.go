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
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ciplat/ciplat/api"
)

// Log store defaults (LogStoreConfig).
const (
	// DefaultLogMaxBytesPerJob is how many bytes of log file one job may
	// fill before its later lines are dropped.
	DefaultLogMaxBytesPerJob = 16 << 20
	// logIndexEvery is the spacing of the sparse offset index: a read
	// that resumes after a sequence number skips at most this many lines.
	logIndexEvery = 1024
	// logLineMaxRead bounds one line a read scans (a client cuts lines at
	// 64 KiB; JSON escaping can grow them several times).
	logLineMaxRead = 8 << 20
	// logMaxEntryBytes bounds one encoded entry: a push is one request
	// body of at most 1 MiB (and a little room for the marker).
	logMaxEntryBytes = 1<<20 + 4096
	// logTailChunk is how much a tail read reads backwards at a time.
	logTailChunk = 64 * 1024
)

// logTruncatedPrefix starts the marker line written where a job's log
// reached its cap.
const logTruncatedPrefix = "[ciplat: log truncated at "

// LogStoreConfig bounds a LogStore. Zero values take the defaults.
type LogStoreConfig struct {
	// MaxBytesPerJob caps one job's log file; default
	// DefaultLogMaxBytesPerJob. The entry that would cross it is replaced by
	// one marker line "[ciplat: log truncated at N bytes]" and every later
	// entry of the job is dropped (counted in DroppedLines).
	MaxBytesPerJob int64
}

// LogStore keeps step output, one append-only NDJSON file per job under its
// directory, and wakes followers (LogSubscription) when lines arrive.
// Entries get a per-job sequence number (Seq, from 1) so a follower can
// resume.
//
// Memory is bounded per job, not per line: a job keeps a sparse offset index
// (one offset per logIndexEvery entries), and reads stream from the file
// (CopyAfter) instead of loading it.
//
// It is not replicated: in a cluster, clients push logs to the leader.
// All methods are safe for concurrent use.
type LogStore struct {
	dir string
	max int64

	dropped   atomic.Uint64 // entries dropped past a job's cap, in total
	followers atomic.Int64  // open subscriptions

	mu     sync.Mutex
	jobs   map[string]*jobLog
	closed bool
}

type jobLog struct {
	mu     sync.Mutex
	id     string
	path   string
	seq    uint64
	loaded bool
	// removed is set once Remove dropped this jobLog from the store: a
	// holder looks it up again.
	removed bool
	// index[k] is the byte offset of the entry with Seq k*logIndexEvery+1;
	// size is the file's.
	index []int64
	size  int64
	// truncated is set once the cap's marker line was written.
	truncated bool
	// subs are the followers of this job, each with this job's position in
	// its list.
	subs map[*LogSubscription]int
}

var safeID = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,128}$`)

// NewLogStore opens (creating) dir with cfg's limits.
func NewLogStore(dir string, cfg LogStoreConfig) (*LogStore, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create log dir: %w", err)
	}
	if cfg.MaxBytesPerJob <= 0 {
		cfg.MaxBytesPerJob = DefaultLogMaxBytesPerJob
	}
	return &LogStore{dir: dir, max: cfg.MaxBytesPerJob, jobs: map[string]*jobLog{}}, nil
}

// Close marks the store closed; later appends fail.
func (l *LogStore) Close() {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
}

// Followers is how many subscriptions (log follows) are open.
func (l *LogStore) Followers() int64 { return l.followers.Load() }

// DroppedLines counts the entries dropped because their job's log was full.
func (l *LogStore) DroppedLines() uint64 { return l.dropped.Load() }

// lockJob returns jobID's log, loaded and locked.
func (l *LogStore) lockJob(jobID string) (*jobLog, error) {
	if !safeID.MatchString(jobID) {
		return nil, fmt.Errorf("invalid job id %q", jobID)
	}
	for {
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			return nil, errors.New("log store closed")
		}
		j := l.jobs[jobID]
		if j == nil {
			j = &jobLog{id: jobID, path: filepath.Join(l.dir, jobID+".ndjson")}
			l.jobs[jobID] = j
		}
		l.mu.Unlock()
		j.mu.Lock()
		if j.removed {
			j.mu.Unlock()
			continue
		}
		if err := j.load(l.max); err != nil {
			j.mu.Unlock()
			return nil, err
		}
		return j, nil
	}
}

// load counts the lines already on disk (after a restart) once. A torn
// last line (a crash mid-write) is cut off, so later appends start on a
// line of their own. The log is full when its last line is the marker and
// the file is near the cap max (a step that printed the marker's text
// early does not end its log).
func (j *jobLog) load(max int64) error {
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
	r := bufio.NewReaderSize(f, 64*1024)
	marker := []byte(`"line":"` + logTruncatedPrefix)
	var read int64 // bytes read, including a partial line
	long := false  // the current line did not fit the buffer
	for {
		chunk, err := r.ReadSlice('\n')
		read += int64(len(chunk))
		if err == nil {
			j.addLine(j.size)
			j.size = read
			j.truncated = !long && bytes.Contains(chunk, marker)
			long = false
			continue
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			long = true
			continue
		}
		if !errors.Is(err, io.EOF) {
			return err
		}
		break
	}
	if j.truncated && j.size < max-logMaxEntryBytes {
		j.truncated = false
	}
	if read > j.size {
		if err := os.Truncate(j.path, j.size); err != nil {
			return err
		}
	}
	j.loaded = true
	return nil
}

// addLine records a new entry starting at off.
func (j *jobLog) addLine(off int64) {
	if j.seq%logIndexEvery == 0 {
		j.index = append(j.index, off)
	}
	j.seq++
}

// Append stores entries of one job in order and wakes its followers. Entries
// past the job's byte cap are dropped: the first of them is replaced by the
// marker line. It returns how many entries were dropped.
func (l *LogStore) Append(jobID string, entries []*api.LogEntry) (dropped int, err error) {
	j, err := l.lockJob(jobID)
	if err != nil {
		return 0, err
	}
	defer j.mu.Unlock()
	if j.truncated {
		l.dropped.Add(uint64(len(entries)))
		return len(entries), nil
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	seq, size := j.seq, j.size
	offsets := make([]int64, 0, len(entries))
	truncated := false
	for i, e := range entries {
		before := buf.Len()
		e.Seq = seq + 1
		if err := enc.Encode(e); err != nil {
			return 0, err
		}
		if size+int64(buf.Len()) > l.max {
			buf.Truncate(before)
			marker := &api.LogEntry{JobID: e.JobID, JobName: e.JobName, Step: e.Step, Attempt: e.Attempt,
				Stream: "stderr", Time: e.Time, Line: fmt.Sprintf("%s%d bytes]", logTruncatedPrefix, l.max), Seq: seq + 1}
			if err := enc.Encode(marker); err != nil {
				return 0, err
			}
			offsets = append(offsets, size+int64(before))
			truncated = true
			dropped = len(entries) - i
			for _, rest := range entries[i:] {
				rest.Seq = 0
			}
			break
		}
		offsets = append(offsets, size+int64(before))
		seq++
	}
	if buf.Len() == 0 {
		return dropped, nil
	}
	f, err := os.OpenFile(j.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return 0, err
	}
	if _, err := f.Write(buf.Bytes()); err != nil {
		f.Close()
		return 0, err
	}
	if err := f.Close(); err != nil {
		return 0, err
	}
	for _, off := range offsets {
		j.addLine(off)
	}
	j.size += int64(buf.Len())
	j.truncated = truncated
	l.dropped.Add(uint64(dropped))
	for sub, i := range j.subs {
		sub.mark(i)
	}
	return dropped, nil
}

// Remove deletes jobID's log file and forgets the job. Followers subscribed
// to it stay subscribed (to an empty log).
func (l *LogStore) Remove(jobID string) error {
	if !safeID.MatchString(jobID) {
		return fmt.Errorf("invalid job id %q", jobID)
	}
	l.mu.Lock()
	j := l.jobs[jobID]
	if j != nil {
		j.mu.Lock()
		if len(j.subs) == 0 {
			j.removed = true
			delete(l.jobs, jobID)
		} else {
			j.seq, j.size, j.index, j.truncated, j.loaded = 0, 0, nil, false, true
		}
	}
	err := os.Remove(filepath.Join(l.dir, jobID+".ndjson"))
	if j != nil {
		j.mu.Unlock()
	}
	l.mu.Unlock()
	if errors.Is(err, os.ErrNotExist) {
		err = nil
	}
	return err
}

// Sweep removes the log of every job whose file was last written before
// cutoff and that keep does not want kept (keep is called without locks
// held). It returns how many logs it removed.
func (l *LogStore) Sweep(cutoff time.Time, keep func(jobID string) bool) (int, error) {
	des, err := os.ReadDir(l.dir)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, de := range des {
		id, ok := strings.CutSuffix(de.Name(), ".ndjson")
		if !ok || de.IsDir() || !safeID.MatchString(id) {
			continue
		}
		info, err := de.Info()
		if err != nil || !info.ModTime().Before(cutoff) || keep(id) {
			continue
		}
		if err := l.Remove(id); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}
