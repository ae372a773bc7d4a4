package profiles

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/pprof/profile"

	"github.com/hal9-lab/hal9-lab/internal/browsertest"
)

// stackProfile builds a CPU profile whose samples are the given stacks
// (leaf first) with their values in nanoseconds.
func stackProfile(stacks map[string]int64) *profile.Profile {
	p := &profile.Profile{
		SampleType: []*profile.ValueType{{Type: "samples", Unit: "count"}, {Type: "cpu", Unit: "nanoseconds"}},
		PeriodType: &profile.ValueType{Type: "cpu", Unit: "nanoseconds"},
		Period:     10_000_000,
	}
	fns := map[string]*profile.Function{}
	locs := map[string]*profile.Location{}
	loc := func(name string) *profile.Location {
		if l, ok := locs[name]; ok {
			return l
		}
		f := &profile.Function{ID: uint64(len(fns) + 1), Name: name, SystemName: name, Filename: "hal9/" + name + ".go"}
		fns[name] = f
		p.Function = append(p.Function, f)
		l := &profile.Location{ID: uint64(len(locs) + 1), Line: []profile.Line{{Function: f, Line: 1}}}
		locs[name] = l
		p.Location = append(p.Location, l)
		return l
	}
	for stack, v := range stacks {
		var ls []*profile.Location
		for _, fn := range strings.Split(stack, ";") {
			ls = append(ls, loc(fn))
		}
		p.Sample = append(p.Sample, &profile.Sample{Location: ls, Value: []int64{v / 10_000_000, v}})
	}
	return p
}

// boxTexts returns the labels pprof's script drew into the flame graph.
func boxTexts(dom string) []string {
	var out []string
	for _, m := range regexp.MustCompile(`<div class="boxtext"[^>]*>([^<]*)</div>`).FindAllStringSubmatch(dom, -1) {
		out = append(out, m[1])
	}
	return out
}

func TestFlameGraphRendersInChromium(t *testing.T) {
	cur := stackProfile(map[string]int64{
		"main.flameLeafAlpha;main.flameMiddle;main.flameRoot": 6e9,
		"main.flameLeafBeta;main.flameMiddle;main.flameRoot":  3e9,
		"main.flameLeafGamma;main.flameRoot":                  1e9,
	})
	base := stackProfile(map[string]int64{
		"main.flameLeafAlpha;main.flameMiddle;main.flameRoot": 2e9,
		"main.flameLeafBeta;main.flameMiddle;main.flameRoot":  6e9,
		"main.flameLeafGamma;main.flameRoot":                  2e9,
	})
	for _, tc := range []struct {
		name string
		opts FlameOptions
		want []string // in the note above the graph
	}{
		{"single", FlameOptions{Title: "leg sqlite · cpu", SampleType: FlameCPUSample}, nil},
		{"diff", FlameOptions{Title: "leg sqlite · cpu", SampleType: FlameCPUSample, Base: base, BaseLabel: "the baseline", Growers: 3},
			[]string{"differential against the baseline", "+40.00 pts</span> main.flameLeafAlpha (20.00% → 60.00%)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			page, err := FlameGraph(cur, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(string(page), "http://") && regexp.MustCompile(`<(script|link)[^>]+(src|href)="https?://`).Match(page) {
				t.Error("the page loads something from the network")
			}
			for _, w := range tc.want {
				if !strings.Contains(string(page), w) {
					t.Errorf("page lacks %q", w)
				}
			}
			path := filepath.Join(t.TempDir(), FlameName("sqlite", "cpu"))
			if err := os.WriteFile(path, page, 0o644); err != nil {
				t.Fatal(err)
			}
			dom := browsertest.DumpDOM(t, browsertest.Chromium(t), path)
			drawn := strings.Join(boxTexts(dom), "\n")
			// A narrow frame shows its name without the package.
			for _, fn := range []string{"flameRoot", "flameMiddle", "flameLeafAlpha", "flameLeafBeta", "flameLeafGamma"} {
				if !strings.Contains(drawn, fn) {
					t.Errorf("the flame graph drew no frame %q; drew:\n%s", fn, drawn)
				}
			}
			diffBars := strings.Count(dom, `class="positive"`) + strings.Count(dom, `class="negative"`)
			if (tc.opts.Base != nil) != (diffBars > 0) {
				t.Errorf("%d diff bars in the page, base given: %v", diffBars, tc.opts.Base != nil)
			}
			if shot := os.Getenv("HAL9_FLAME_SCREENSHOT"); shot != "" { // look at it: HAL9_FLAME_SCREENSHOT=/tmp/flame
				browsertest.Screenshot(t, browsertest.Chromium(t), path, shot+"-"+tc.name+".png")
			}
		})
	}
}

// TestFlameGraphZoomsFromFile clicks a frame in the page opened from
// file://: pprof's script zooms without its server (history.pushState of a
// query on the same file), so the other branch's frames leave the graph.
func TestFlameGraphZoomsFromFile(t *testing.T) {
	page, err := FlameGraph(stackProfile(map[string]int64{
		"main.flameLeafAlpha;main.flameMiddle;main.flameRoot": 6e9,
		"main.flameLeafGamma;main.flameRoot":                  4e9,
	}), FlameOptions{Title: "zoom", SampleType: FlameCPUSample})
	if err != nil {
		t.Fatal(err)
	}
	click := `<script>window.addEventListener('load', () => setTimeout(() => {
  const box = [...document.querySelectorAll('.boxtext')].find(e => e.textContent.includes('flameMiddle')).parentNode;
  box.dispatchEvent(new MouseEvent('mousedown', {clientX: 5, clientY: 5, bubbles: true}));
  box.dispatchEvent(new MouseEvent('click', {clientX: 5, clientY: 5, bubbles: true}));
  document.body.setAttribute('data-url', location.href);
}, 300));</script></body>`
	path := filepath.Join(t.TempDir(), "zoom.html")
	if err := os.WriteFile(path, []byte(strings.Replace(string(page), "</body>", click, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	dom := browsertest.DumpDOM(t, browsertest.Chromium(t), path)
	if !regexp.MustCompile(`data-url="file://[^"]*\?p=[^"]*flameMiddle`).MatchString(dom) {
		t.Errorf("the click did not pivot the page on flameMiddle: %s", regexp.MustCompile(`<body[^>]*>`).FindString(dom))
	}
	drawn := strings.Join(boxTexts(dom), "\n")
	if !strings.Contains(drawn, "flameLeafAlpha") || strings.Contains(drawn, "flameLeafGamma") {
		t.Errorf("after zooming into flameMiddle the graph should hold flameLeafAlpha and not flameLeafGamma; drew:\n%s", drawn)
	}
}

func TestFlameGraphErrors(t *testing.T) {
	cur := stackProfile(map[string]int64{"main.a": 1e9})
	if _, err := FlameGraph(nil, FlameOptions{SampleType: FlameCPUSample}); err == nil {
		t.Error("nil profile: no error")
	}
	if _, err := FlameGraph(cur, FlameOptions{SampleType: "inuse_space"}); err == nil || !strings.Contains(err.Error(), `no sample type "inuse_space"`) {
		t.Errorf("missing sample type: %v", err)
	}
	if _, err := standalone([]byte("<html>no head</html>"), FlameOptions{}, nil); err == nil || !strings.Contains(err.Error(), "changed shape") {
		t.Errorf("unexpected page: %v", err)
	}
}

func TestWriteFlames(t *testing.T) {
	cpu := stackProfile(map[string]int64{"main.a;main.root": 3e9, "main.b;main.root": 1e9})
	heap := stackProfile(map[string]int64{"main.alloc;main.root": 4 << 20})
	heap.SampleType = []*profile.ValueType{{Type: "inuse_objects", Unit: "count"}, {Type: "inuse_space", Unit: "bytes"}}
	r := NewReceiver(nil)
	r.SetLeg("sqlite")
	for typ, p := range map[string]*profile.Profile{"cpu": cpu, "heap": heap, "mutex": cpu} {
		if err := r.add(typ, "hal9", p); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name  string
		cmp   *Comparison
		files []string
		notes int
	}{
		{"alone", nil, []string{"sqlite-cpu.html", "sqlite-heap.html"}, 0},
		{"no base profile", &Comparison{Label: "baseline", Profile: func(string) *profile.Profile { return nil }},
			[]string{"sqlite-cpu.html", "sqlite-heap.html"}, 0},
		{"against a leg", &Comparison{Label: "leg postgres", Profile: func(typ string) *profile.Profile {
			return map[string]*profile.Profile{"cpu": cpu}[typ]
		}}, []string{"sqlite-cpu.html", "sqlite-cpu-diff.html", "sqlite-heap.html"}, 0},
		{"incompatible base", &Comparison{Label: "odd", Profile: func(typ string) *profile.Profile { return heap }},
			[]string{"sqlite-cpu.html", "sqlite-heap.html", "sqlite-heap-diff.html"}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			flames, notes := r.WriteFlames(dir, "sqlite", tc.cmp)
			var got []string
			for _, f := range flames {
				got = append(got, f.File)
				if _, err := os.Stat(filepath.Join(dir, f.File)); err != nil {
					t.Errorf("listed but not written: %v", err)
				}
				if (f.Against != "") != strings.HasSuffix(f.File, "-diff.html") {
					t.Errorf("%s: against %q", f.File, f.Against)
				}
			}
			if strings.Join(got, ",") != strings.Join(tc.files, ",") {
				t.Errorf("pages %v, want %v", got, tc.files)
			}
			if len(notes) != tc.notes {
				t.Errorf("notes %q, want %d", notes, tc.notes)
			}
		})
	}
}
