package profiles

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/pprof/driver"
	"github.com/google/pprof/profile"
)

// Sample types a flame graph is drawn for. CPU time for the "cpu" profile;
// in-use bytes for "heap" (what is held, the question a leak asks; the
// report's top table ranks allocated bytes, the churn).
const (
	FlameCPUSample  = CPUSampleType
	FlameHeapSample = "inuse_space"
)

// FlameSample returns the sample type a flame graph of profile type typ
// shows, and false for types the report draws none for.
func FlameSample(typ string) (string, bool) {
	switch typ {
	case "cpu":
		return FlameCPUSample, true
	case "heap":
		return FlameHeapSample, true
	}
	return "", false
}

// FlameName is the file name, under profiles/, of a leg's flame graph page
// of profile type typ.
func FlameName(leg, typ string) string { return sanitize(leg) + "-" + typ + ".html" }

// FlameDiffName is the file name of the differential flame graph of a leg's
// profile type typ against what it is compared with.
func FlameDiffName(leg, typ string) string { return sanitize(leg) + "-" + typ + "-diff.html" }

// Flame is one flame graph page of a leg, as the report links it.
type Flame struct {
	Type    string `json:"type"`              // profile type: cpu, heap
	Sample  string `json:"sample"`            // the sample type drawn: cpu, inuse_space
	File    string `json:"file"`              // file name under profiles/
	Against string `json:"against,omitempty"` // a differential page: what it is compared with
}

// Comparison is what a leg's differential flame graphs compare it with:
// the baseline's profiles, a gate's reference build, or another leg of the
// run. Profile returns nil where it has no profile of a type.
type Comparison struct {
	Label   string
	Profile func(typ string) *profile.Profile
}

// WriteFlames writes the flame graph pages of leg's CPU and heap profiles
// into dir and, with cmp, a differential page of each against cmp's
// profile of the same type. It returns the pages written and a note for
// each page it could not write.
func (r *Receiver) WriteFlames(dir, leg string, cmp *Comparison) ([]Flame, []string) {
	var flames []Flame
	var notes []string
	for _, typ := range r.Types(leg) {
		sample, ok := FlameSample(typ)
		if !ok {
			continue
		}
		p := r.Profile(leg, typ)
		write := func(name string, o FlameOptions) bool {
			page, err := FlameGraph(p, o)
			if err == nil {
				err = os.WriteFile(filepath.Join(dir, name), page, 0o644)
			}
			if err != nil {
				notes = append(notes, fmt.Sprintf("%s flame graph: %v", typ, err))
				return false
			}
			return true
		}
		title := leg + " · " + typ
		if write(FlameName(leg, typ), FlameOptions{Title: title, SampleType: sample}) {
			flames = append(flames, Flame{Type: typ, Sample: sample, File: FlameName(leg, typ)})
		}
		if cmp == nil {
			continue
		}
		base := cmp.Profile(typ)
		if base == nil {
			continue
		}
		if write(FlameDiffName(leg, typ), FlameOptions{Title: title, SampleType: sample, Base: base, BaseLabel: cmp.Label, Growers: 10}) {
			flames = append(flames, Flame{Type: typ, Sample: sample, File: FlameDiffName(leg, typ), Against: cmp.Label})
		}
	}
	return flames, notes
}

// FlameOptions describe one flame graph page.
type FlameOptions struct {
	Title      string           // shown at the top of the page
	SampleType string           // the sample type drawn (FlameCPUSample, FlameHeapSample)
	Base       *profile.Profile // non-nil: a differential graph of the profile against Base
	BaseLabel  string           // what Base is ("baseline", "leg sqlite", "main"), for the page's text
	Growers    int              // with Base: how many of the functions that grew most to list beside it
}

// pprofMu serialises calls into pprof's driver: it keeps package state
// (its interactive mode, its command table) that concurrent runs would share.
var pprofMu sync.Mutex

// FlameGraph renders p as a self-contained HTML page holding pprof's own
// flame graph (github.com/google/pprof's web UI, rendered into a file rather
// than served): the page needs no server and no network, so it opens from
// file://. Hovering, the search box and clicking a frame to zoom work in the
// page; the menus that ask pprof's server for another view (Refine, Source,
// other views, Download) are hidden, and the page says how to get them.
//
// With o.Base the page is pprof's differential flame graph (-diff_base,
// -normalize): p is scaled to Base's total, each frame is as wide as its
// value in both together, and a bar inside it, red where the frame grew
// against Base and green where it shrank, is as wide as the change; the
// functions whose share grew most are listed above the graph.
func FlameGraph(p *profile.Profile, o FlameOptions) ([]byte, error) {
	if p == nil {
		return nil, errors.New("flame graph: no profile")
	}
	if !hasSampleType(p, o.SampleType) {
		return nil, fmt.Errorf("flame graph: profile has no sample type %q", o.SampleType)
	}
	if o.Base != nil && !hasSampleType(o.Base, o.SampleType) {
		return nil, fmt.Errorf("flame graph: base profile has no sample type %q", o.SampleType)
	}
	page, err := renderPprofFlame(p, o.Base, o.SampleType)
	if err != nil {
		return nil, err
	}
	var growers []FuncDelta
	if o.Base != nil && o.Growers > 0 {
		if growers, err = Diff(o.Base, p, o.SampleType, o.Growers); err != nil {
			return nil, fmt.Errorf("flame graph: growers: %w", err)
		}
		// Under a twentieth of a point is sampling noise, not growth.
		growers = slices.DeleteFunc(growers, func(d FuncDelta) bool { return d.Delta < 0.0005 })
	}
	return standalone(page, o, growers)
}

// renderPprofFlame runs pprof's driver as `pprof -http=HOST:PORT -no_browser`
// and, instead of serving its handlers, calls the flame graph's handler
// once and keeps the page. The port is never listened on: pprof only picks
// one itself when none is given.
func renderPprofFlame(p, base *profile.Profile, sampleType string) ([]byte, error) {
	args := []string{
		"-http=127.0.0.1:1", "-no_browser",
		"-symbolize=none", // pyroscope-go's profiles carry their function names
		"-sample_index=" + sampleType,
	}
	// -normalize scales the profile to the base's total first, so runs of
	// different lengths compare by share, as Diff does. pprof keeps its
	// settings from one run to the next in package state: every setting
	// used is given each time.
	args = append(args, fmt.Sprintf("-normalize=%t", base != nil))
	if base != nil {
		args = append(args, "-diff_base=base")
	}
	args = append(args, "profile")
	srcs := map[string]*profile.Profile{"profile": p.Copy()}
	if base != nil {
		srcs["base"] = base.Copy()
	}
	ui := &quietUI{}
	var page []byte
	opts := &driver.Options{
		Flagset: newArgFlags(args),
		Fetch:   memFetcher(srcs),
		UI:      ui,
		HTTPServer: func(a *driver.HTTPServerArgs) error {
			h := a.Handlers["/flamegraph"]
			if h == nil {
				return errors.New("pprof offers no /flamegraph handler")
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/flamegraph", nil))
			if rec.Code != http.StatusOK {
				return fmt.Errorf("pprof's flame graph answered %d: %s", rec.Code, strings.TrimSpace(rec.Body.String()))
			}
			page = rec.Body.Bytes()
			return nil
		},
	}
	pprofMu.Lock()
	err := driver.PProf(opts)
	pprofMu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("flame graph: pprof: %w%s", err, ui.errText())
	}
	if page == nil {
		return nil, fmt.Errorf("flame graph: pprof rendered no page%s", ui.errText())
	}
	return page, nil
}

// hideServerMenus hides what needs pprof's server: the other views,
// Refine, Config, Download, and the right-click menu's actions.
const hideServerMenus = `<style>
#view, #sample, #refine, #config, #download, #action-menu, .header .title a { display: none !important; }
.hal9-note { font: 13px sans-serif; padding: 4px 8px; color: #333; background: #f4f4f4; border-bottom: 1px solid #ddd; }
.hal9-note code { background: #e8e8e8; padding: 0 3px; }
.hal9-growers { font: 12px monospace; margin: 2px 0 0 0; }
.hal9-grew { color: #a33; } .hal9-shrank { color: #3a3; }
</style>
`

// standalone turns pprof's page into the file the report links to: the
// server-only menus hidden, and a line that says what the graph shows.
func standalone(page []byte, o FlameOptions, growers []FuncDelta) ([]byte, error) {
	head := bytes.Index(page, []byte("</head>"))
	body := bytes.Index(page, []byte(`<div id="current-details">`))
	if head < 0 || body < 0 || body < head {
		return nil, errors.New("flame graph: pprof's page has changed shape (no </head> or current-details); update lab/profiles/flame.go")
	}
	var note strings.Builder
	note.WriteString(`<div class="hal9-note">`)
	note.WriteString("<b>" + html.EscapeString(o.Title) + "</b> · " + html.EscapeString(o.SampleType))
	if o.Base != nil {
		label := o.BaseLabel
		if label == "" {
			label = "the base profile"
		}
		note.WriteString(" · differential against " + html.EscapeString(label) +
			` (this profile scaled to its total): a frame is as wide as both together; the bar inside it is its change (<span class="hal9-grew">red: grew</span>, <span class="hal9-shrank">green: shrank</span>)`)
		if len(growers) > 0 {
			note.WriteString(`<div class="hal9-growers">grew most (share of all ` + html.EscapeString(o.SampleType) + `):`)
			for _, g := range growers {
				fmt.Fprintf(&note, `<br><span class="hal9-grew">%+.2f pts</span> %s (%.2f%% → %.2f%%)`,
					100*g.Delta, html.EscapeString(g.Name), 100*g.BaseShare, 100*g.Share)
			}
			note.WriteString(`</div>`)
		}
	}
	note.WriteString(`<br>Hover a frame for its numbers, click to zoom, type a regexp in the search box to highlight. Refine, Source and the other views need pprof's server: <code>go tool pprof -http=: PROFILE.pb.gz</code>.</div>` + "\n")

	page, err := dropPlaces(page)
	if err != nil {
		return nil, err
	}
	head = bytes.Index(page, []byte("</head>"))
	body = bytes.Index(page, []byte(`<div id="current-details">`))

	var out bytes.Buffer
	out.Grow(len(page) + len(hideServerMenus) + note.Len())
	out.Write(page[:head])
	out.WriteString(hideServerMenus)
	out.Write(page[head:body])
	out.WriteString(note.String())
	out.Write(page[body:])
	return out.Bytes(), nil
}

func hasSampleType(p *profile.Profile, t string) bool {
	for _, st := range p.SampleType {
		if st.Type == t {
			return true
		}
	}
	return false
}

// memFetcher hands pprof the profiles by name, from memory.
type memFetcher map[string]*profile.Profile

func (m memFetcher) Fetch(src string, _, _ time.Duration) (*profile.Profile, string, error) {
	p, ok := m[src]
	if !ok {
		return nil, "", fmt.Errorf("no profile %q", src)
	}
	return p, src, nil
}

// quietUI keeps pprof's messages to itself; errors are kept for the
// error pprof returns.
type quietUI struct {
	mu   sync.Mutex
	errs []string
}

func (u *quietUI) ReadLine(string) (string, error) { return "", errors.New("not interactive") }
func (u *quietUI) Print(...any)                    {}
func (u *quietUI) PrintErr(args ...any) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.errs = append(u.errs, strings.TrimSpace(fmt.Sprint(args...)))
}
func (u *quietUI) IsTerminal() bool                    { return false }
func (u *quietUI) WantBrowser() bool                   { return false }
func (u *quietUI) SetAutoComplete(func(string) string) {}
func (u *quietUI) errText() string {
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.errs) == 0 {
		return ""
	}
	return " (" + strings.Join(u.errs, "; ") + ")"
}

// argFlags is pprof's FlagSet over a fixed argument list, on a flag.FlagSet
// of its own (pprof's GoFlags would parse the process's flags).
type argFlags struct {
	fs    *flag.FlagSet
	args  []string
	extra []string
}

func newArgFlags(args []string) *argFlags {
	fs := flag.NewFlagSet("pprof", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return &argFlags{fs: fs, args: args}
}

func (f *argFlags) Bool(n string, d bool, u string) *bool          { return f.fs.Bool(n, d, u) }
func (f *argFlags) Int(n string, d int, u string) *int             { return f.fs.Int(n, d, u) }
func (f *argFlags) Float64(n string, d float64, u string) *float64 { return f.fs.Float64(n, d, u) }
func (f *argFlags) String(n, d, u string) *string                  { return f.fs.String(n, d, u) }
func (f *argFlags) StringList(n, d, u string) *[]*string {
	return &[]*string{f.fs.String(n, d, u)}
}
func (f *argFlags) ExtraUsage() string      { return strings.Join(f.extra, "\n") }
func (f *argFlags) AddExtraUsage(eu string) { f.extra = append(f.extra, eu) }
func (f *argFlags) Parse(usage func()) []string {
	if err := f.fs.Parse(f.args); err != nil || f.fs.NArg() == 0 {
		usage()
		return nil
	}
	return f.fs.Args()
}

// fillPlaces is pprof's StackSet.fillPlaces (internal/report/stacks.go) in
// the page's script: each source's Places, the stack slots it occurs in
// (the outermost one per stack), rebuilt from the stacks.
const fillPlaces = `<script>
function hal9FillPlaces(set) {
  for (const src of set.Sources) src.Places = [];
  set.Stacks.forEach((stack, i) => {
    const seen = new Set();
    stack.Sources.forEach((src, j) => {
      if (seen.has(src)) return;
      seen.add(src);
      set.Sources[src].Places.push({Stack: i, Pos: j});
    });
  });
  return set;
}
</script>
`

// dropPlaces takes the Places lists out of the page's flame graph data and
// has the page rebuild them as it loads: they are derived from the stacks
// and made up two thirds of a server's page (a nightly leg's CPU profile:
// 3.4 MB with them, 1.2 MB without).
func dropPlaces(page []byte) ([]byte, error) {
	const call = "stackViewer("
	at := bytes.LastIndex(page, []byte(call))
	if at < 0 {
		return nil, errors.New("flame graph: pprof's page has changed shape (no stackViewer call); update lab/profiles/flame.go")
	}
	start := at + len(call)
	dec := json.NewDecoder(bytes.NewReader(page[start:]))
	var set map[string]json.RawMessage
	if err := dec.Decode(&set); err != nil {
		return nil, fmt.Errorf("flame graph: pprof's stack data: %w", err)
	}
	end := start + int(dec.InputOffset())
	var sources []map[string]json.RawMessage
	if err := json.Unmarshal(set["Sources"], &sources); err != nil {
		return nil, fmt.Errorf("flame graph: pprof's stack sources: %w", err)
	}
	for _, s := range sources {
		delete(s, "Places")
	}
	var err error
	if set["Sources"], err = json.Marshal(sources); err != nil {
		return nil, err
	}
	data, err := json.Marshal(set)
	if err != nil {
		return nil, err
	}
	script := bytes.LastIndex(page[:at], []byte("<script>"))
	if script < 0 {
		return nil, errors.New("flame graph: pprof's page has changed shape (no script around stackViewer); update lab/profiles/flame.go")
	}
	var out bytes.Buffer
	out.Grow(len(page))
	out.Write(page[:script])
	out.WriteString(fillPlaces)
	out.Write(page[script:start])
	out.WriteString("hal9FillPlaces(")
	out.Write(data)
	out.WriteString(")")
	out.Write(page[end:])
	return out.Bytes(), nil
}
