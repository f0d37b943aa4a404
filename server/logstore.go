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

// LogSubscription tells one follower which of its jobs got new lines, so a
// follow of a many-job pipeline reads only those (never polls every file).
//
// Lifecycle: Subscribe, then loop { <-C(); Take() ... } and Close once.
// Concurrency: the store marks from Append; C, Take and Close belong to
// the follower's goroutine.
type LogSubscription struct {
	store *LogStore
	jobs  []*jobLog
	c     chan struct{}

	mu    sync.Mutex
	dirty []int
	seen  []bool
}

// Subscribe starts a subscription to jobIDs; Take's numbers index jobIDs.
func (l *LogStore) Subscribe(jobIDs []string) (*LogSubscription, error) {
	s := &LogSubscription{store: l, c: make(chan struct{}, 1), seen: make([]bool, len(jobIDs))}
	l.followers.Add(1)
	for i, id := range jobIDs {
		j, err := l.lockJob(id)
		if err != nil {
			s.Close()
			return nil, err
		}
		if j.subs == nil {
			j.subs = map[*LogSubscription]int{}
		}
		j.subs[s] = i
		s.jobs = append(s.jobs, j)
		j.mu.Unlock()
	}
	return s, nil
}

// C is signalled (capacity 1) when a job got lines since the last Take.
func (s *LogSubscription) C() <-chan struct{} { return s.c }

// Take returns the positions (in Subscribe's list) of the jobs that got
// lines since the last Take, and forgets them.
func (s *LogSubscription) Take() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.dirty
	s.dirty = nil
	for _, i := range out {
		s.seen[i] = false
	}
	return out
}

func (s *LogSubscription) mark(i int) {
	s.mu.Lock()
	if !s.seen[i] {
		s.seen[i] = true
		s.dirty = append(s.dirty, i)
	}
	s.mu.Unlock()
	select {
	case s.c <- struct{}{}:
	default:
	}
}

// Close ends the subscription.
func (s *LogSubscription) Close() {
	if s.store == nil {
		return
	}
	l := s.store
	l.followers.Add(-1)
	s.store = nil
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, j := range s.jobs {
		j.mu.Lock()
		delete(j.subs, s)
		// A followed job that never logged is forgotten with its last
		// follower, so following does not grow the store.
		if len(j.subs) == 0 && j.seq == 0 && !j.removed && l.jobs[j.id] == j {
			j.removed = true
			delete(l.jobs, j.id)
		}
		j.mu.Unlock()
	}
	s.jobs = nil
}
