// Package profiles receives continuous profiles from the server under test
// and summarises them: a small HTTP receiver for the Pyroscope ingest
// protocol as github.com/grafana/pyroscope-go speaks it, per-leg merged
// pprof profiles, top functions and diffs against a baseline profile.
//
// It is not a Pyroscope server (AGPL, and far bigger): it keeps only what
// one lab run needs, in memory, and writes plain pprof files that
// `go tool pprof` opens. A user with a real Pyroscope points the server's
// --pyroscope-url at it instead.
package profiles

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/google/pprof/profile"
)

// DefaultLeg is where profiles go before the lab names a leg.
const DefaultLeg = "default"

// maxBody bounds one upload; pyroscope-go's profiles are tens of KiB.
const maxBody = 32 << 20

// Receiver is an http.Handler for POST /ingest. Profiles are stored under
// the current leg (SetLeg) and merged per profile type.
type Receiver struct {
	log *slog.Logger

	mu   sync.Mutex
	leg  string
	legs map[string]map[string]*entry // leg → type → merged profile
}

type entry struct {
	prof    *profile.Profile
	uploads int
	app     string
}

// NewReceiver returns an empty receiver; log may be nil.
func NewReceiver(log *slog.Logger) *Receiver {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Receiver{log: log, leg: DefaultLeg, legs: map[string]map[string]*entry{}}
}

// SetLeg names the leg that following uploads belong to. The lab calls it
// before starting each leg's server, and after that server has exited
// (pyroscope-go flushes on shutdown), so uploads never straddle legs.
func (r *Receiver) SetLeg(leg string) {
	if leg == "" {
		leg = DefaultLeg
	}
	r.mu.Lock()
	r.leg = leg
	r.mu.Unlock()
}

// ServeHTTP implements the ingest endpoint. Any path ending in /ingest is
// accepted, so a --pyroscope-url with a path prefix works as well.
func (r *Receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if !strings.HasSuffix(req.URL.Path, "/ingest") {
		http.Error(w, "not found: the profile receiver serves POST /ingest only", http.StatusNotFound)
		return
	}
	if req.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "method not allowed: use POST /ingest", http.StatusMethodNotAllowed)
		return
	}
	meta, err := ParseIngestQuery(req.URL.Query())
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	raw, stc, err := readBody(w, req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	p, err := profile.ParseData(raw)
	if err != nil {
		http.Error(w, fmt.Sprintf("field profile: not a pprof profile (gzipped or not): %v", err), http.StatusBadRequest)
		return
	}
	typ := profileType(p, stc)
	if err := r.add(typ, meta.App, p); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.WriteHeader(http.StatusOK)
}

// readBody returns the pprof bytes and the optional sample type config.
// pyroscope-go sends multipart/form-data with fields profile and
// sample_type_config (older clients also prev_profile, ignored); a
// non-multipart body is taken as the profile itself.
func readBody(w http.ResponseWriter, req *http.Request) ([]byte, map[string]sampleTypeConfig, error) {
	body := http.MaxBytesReader(w, req.Body, maxBody)
	mt, params, err := mime.ParseMediaType(req.Header.Get("Content-Type"))
	if err != nil || !strings.HasPrefix(mt, "multipart/") {
		raw, err := io.ReadAll(body)
		if err != nil {
			return nil, nil, fmt.Errorf("read body: %w", err)
		}
		if len(raw) == 0 {
			return nil, nil, errors.New("empty body: send a multipart form with a gzipped pprof in field profile")
		}
		return raw, nil, nil
	}
	mr := multipart.NewReader(body, params["boundary"])
	var raw []byte
	var stc map[string]sampleTypeConfig
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, nil, fmt.Errorf("read multipart body: %w", err)
		}
		data, err := io.ReadAll(part)
		if err != nil {
			return nil, nil, fmt.Errorf("read multipart field %s: %w", part.FormName(), err)
		}
		switch part.FormName() {
		case "profile":
			raw = data
		case "sample_type_config":
			if err := json.Unmarshal(data, &stc); err != nil {
				return nil, nil, fmt.Errorf("field sample_type_config: not JSON of {type: {units, aggregation, display-name}}: %w", err)
			}
		}
	}
	if len(raw) == 0 {
		return nil, nil, errors.New("multipart body has no field profile (a gzipped pprof)")
	}
	return raw, stc, nil
}

// sampleTypeConfig mirrors pyroscope-go's upstream.SampleType.
type sampleTypeConfig struct {
	Units       string `json:"units,omitempty"`
	Aggregation string `json:"aggregation,omitempty"`
	DisplayName string `json:"display-name,omitempty"`
	Sampled     bool   `json:"sampled,omitempty"`
	Cumulative  bool   `json:"cumulative,omitempty"`
}

// profileType names a profile by what it measures: cpu, heap, mutex,
// block, goroutine, or its first sample type.
func profileType(p *profile.Profile, stc map[string]sampleTypeConfig) string {
	has := map[string]bool{}
	for _, st := range p.SampleType {
		has[st.Type] = true
	}
	switch {
	case has["cpu"]:
		return "cpu"
	case has["alloc_space"] || has["inuse_space"]:
		return "heap"
	case has["goroutine"] || has["goroutines"]:
		return "goroutine"
	case has["contentions"] || has["delay"]:
		for _, c := range stc {
			switch {
			case strings.HasPrefix(c.DisplayName, "mutex"):
				return "mutex"
			case strings.HasPrefix(c.DisplayName, "block"):
				return "block"
			}
		}
		return "contentions"
	case len(p.SampleType) > 0:
		return sanitize(p.SampleType[0].Type)
	}
	return "unknown"
}

func (r *Receiver) add(typ, app string, p *profile.Profile) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	byType := r.legs[r.leg]
	if byType == nil {
		byType = map[string]*entry{}
		r.legs[r.leg] = byType
	}
	e := byType[typ]
	if e == nil {
		byType[typ] = &entry{prof: p, uploads: 1, app: app}
		return nil
	}
	merged, err := profile.Merge([]*profile.Profile{e.prof, p})
	if err != nil {
		return fmt.Errorf("merge %s profile into leg %s: incompatible with the earlier ones (%v)", typ, r.leg, err)
	}
	e.prof = merged
	e.uploads++
	return nil
}

// Legs lists the legs that received profiles, sorted.
func (r *Receiver) Legs() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, 0, len(r.legs))
	for l := range r.legs {
		out = append(out, l)
	}
	sort.Strings(out)
	return out
}

// Types lists the profile types received for leg, sorted.
func (r *Receiver) Types(leg string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, 0, len(r.legs[leg]))
	for t := range r.legs[leg] {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

// Profile returns a copy of leg's merged profile of type typ, or nil.
func (r *Receiver) Profile(leg, typ string) *profile.Profile {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.legs[leg][typ]
	if e == nil {
		return nil
	}
	return e.prof.Copy()
}

// Uploads returns how many uploads of type typ leg received.
func (r *Receiver) Uploads(leg, typ string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e := r.legs[leg][typ]; e != nil {
		return e.uploads
	}
	return 0
}

// FileName is the file a leg's profile of a type is saved as.
func FileName(leg, typ string) string {
	return sanitize(leg) + "-" + sanitize(typ) + ".pb.gz"
}

// WriteFiles writes every merged profile to dir/<leg>-<type>.pb.gz
// (gzipped pprof) and returns the paths written.
func (r *Receiver) WriteFiles(dir string) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create profile dir %s: %w", dir, err)
	}
	var written []string
	for _, leg := range r.Legs() {
		for _, typ := range r.Types(leg) {
			p := r.Profile(leg, typ)
			path := filepath.Join(dir, FileName(leg, typ))
			if err := WriteFile(path, p); err != nil {
				return written, err
			}
			written = append(written, path)
		}
	}
	return written, nil
}

// WriteFile writes p as a gzipped pprof file.
func WriteFile(path string, p *profile.Profile) error {
	var buf bytes.Buffer
	if err := p.Write(&buf); err != nil { // Write gzips
		return fmt.Errorf("encode profile %s: %w", path, err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("write profile %s: %w", path, err)
	}
	return nil
}

// ReadFile reads a pprof file, gzipped or not.
func ReadFile(path string) (*profile.Profile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open profile: %w", err)
	}
	defer f.Close()
	p, err := profile.Parse(f)
	if err != nil {
		return nil, fmt.Errorf("parse profile %s: %w", path, err)
	}
	return p, nil
}

// sanitize keeps names safe as file name parts ("postgres+redis" stays).
func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '+', r == '.':
			return r
		}
		return '_'
	}, s)
}
