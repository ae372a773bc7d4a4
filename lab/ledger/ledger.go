// Package ledger is the acknowledgement ledger: one JSON line per write
// the server acknowledged (a signal answered 200 or 202, a registration
// answered 201, an API key answered 201), each naming the user it belongs
// to, and its verification after the run: every entry looked up in the
// database the lab holds (durability), or read back through the API as
// its owner with caches bypassed (visibility, for a server the lab did not
// start). Acknowledged, found, lost and duplicated are counted; a loss
// fails the run.
package ledger

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// Kinds of entries.
const (
	KindSignal = "signal"
	KindUser   = "user"
	KindAPIKey = "api_key"
)

// Entry is one acknowledged write, one JSON line:
//
//	{"kind":"signal","id":"<signal_id>","user":"alice","status":200,"at":"…"}
//	{"kind":"user","id":"<user.id of the 201 body>","username":"alice"}
//	{"kind":"api_key","id":"…","user":"alice"}
//
// User is the owner's username (signals and API keys); Username is the
// registered name (users). Status is the HTTP status of the
// acknowledgement (200 sync, 202 async signals).
type Entry struct {
	Kind     string     `json:"kind"`
	ID       string     `json:"id"`
	User     string     `json:"user,omitempty"`
	Username string     `json:"username,omitempty"`
	Status   int        `json:"status,omitempty"`
	At       *time.Time `json:"at,omitempty"`
}

// Owner is the username an entry belongs to.
func (e Entry) Owner() string {
	if e.Kind == KindUser {
		return e.Username
	}
	return e.User
}

// Validate checks one entry's fields.
func (e Entry) Validate() error {
	switch e.Kind {
	case KindSignal, KindAPIKey:
		if e.User == "" {
			return fmt.Errorf("%s entry %q has no user", e.Kind, e.ID)
		}
	case KindUser:
		if e.Username == "" {
			return fmt.Errorf("user entry %q has no username", e.ID)
		}
	default:
		return fmt.Errorf("unknown kind %q: want signal, user or api_key", e.Kind)
	}
	if e.ID == "" {
		return fmt.Errorf("%s entry without an id", e.Kind)
	}
	return nil
}

// Recorder takes acknowledged writes (the workload calls it).
type Recorder interface {
	Record(Entry)
}

// Writer appends entries to a file as JSON Lines; safe for concurrent use.
// Entries are buffered and flushed every second and on Close, so a
// crashing lab loses at most the last second of its own ledger (never the
// server's data).
type Writer struct {
	mu    sync.Mutex
	f     *os.File
	w     *bufio.Writer
	enc   *json.Encoder
	n     int
	err   error
	done  chan struct{}
	close sync.Once
}

// Create creates (truncates) path and returns a Writer on it.
func Create(path string) (*Writer, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("ledger: %w", err)
	}
	bw := bufio.NewWriterSize(f, 64<<10)
	w := &Writer{f: f, w: bw, enc: json.NewEncoder(bw), done: make(chan struct{})}
	go w.flushLoop()
	return w, nil
}

func (w *Writer) flushLoop() {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-w.done:
			return
		case <-t.C:
			w.mu.Lock()
			if w.err == nil {
				w.err = w.w.Flush()
			}
			w.mu.Unlock()
		}
	}
}

// Record appends one entry (its time defaults to now for signals).
func (w *Writer) Record(e Entry) {
	if e.Kind == KindSignal && e.At == nil {
		now := time.Now().UTC()
		e.At = &now
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return
	}
	w.err = w.enc.Encode(e)
	w.n++
}

// Count is how many entries were recorded.
func (w *Writer) Count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.n
}

// Path is the file written.
func (w *Writer) Path() string { return w.f.Name() }

// Close flushes and closes the file; it returns the first write error.
func (w *Writer) Close() error {
	var err error
	w.close.Do(func() {
		close(w.done)
		w.mu.Lock()
		defer w.mu.Unlock()
		if w.err == nil {
			w.err = w.w.Flush()
		}
		err = errors.Join(w.err, w.f.Close())
		if err != nil {
			err = fmt.Errorf("ledger %s: %w", w.f.Name(), err)
		}
	})
	return err
}

// Memory is a Recorder that keeps entries in memory (tests, small runs).
type Memory struct {
	mu      sync.Mutex
	Entries []Entry
}

// Record appends e.
func (m *Memory) Record(e Entry) {
	m.mu.Lock()
	m.Entries = append(m.Entries, e)
	m.mu.Unlock()
}

// Tee records into every non-nil recorder.
type Tee []Recorder

// Record records e into each.
func (t Tee) Record(e Entry) {
	for _, r := range t {
		if r != nil {
			r.Record(e)
		}
	}
}

// ReadFile reads a ledger; an invalid line is an error naming it.
func ReadFile(path string) ([]Entry, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("ledger: %w", err)
	}
	defer f.Close()
	es, err := Read(f)
	if err != nil {
		return nil, fmt.Errorf("ledger %s: %w", path, err)
	}
	return es, nil
}

// Read reads JSON Lines entries.
func Read(r io.Reader) ([]Entry, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var out []Entry
	line := 0
	for sc.Scan() {
		line++
		b := sc.Bytes()
		if len(b) == 0 {
			continue
		}
		var e Entry
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&e); err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		if err := e.Validate(); err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		out = append(out, e)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("line %d: %w", line+1, err)
	}
	return out, nil
}
