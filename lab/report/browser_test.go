package report

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/hal9-lab/hal9-lab/internal/browsertest"
)

// TestHTMLRendersInChromium opens report.html in headless chromium and
// checks the script drew every chart without errors.
func TestHTMLRendersInChromium(t *testing.T) {
	bin := browsertest.Chromium(t)
	for _, gate := range []bool{false, true} {
		t.Run(map[bool]string{false: "run", true: "gate"}[gate], func(t *testing.T) {
			dir := t.TempDir()
			s := fakeSummary(gate)
			if _, err := WriteAll(dir, s); err != nil {
				t.Fatal(err)
			}
			page := filepath.Join(dir, HTMLFile)
			dom := browsertest.DumpDOM(t, bin, page)
			n, ok := browsertest.Rendered(dom)
			if !ok {
				t.Fatalf("body has no data-rendered marker: the script did not finish\n%s", browsertest.Head(dom, 2000))
			}
			want := 6*len(s.Legs) + 3 // + the capacity leg's three curves
			if gate {
				want += len(s.Gate.Comparison.Results)
			}
			if n != want {
				t.Errorf("rendered %d charts, want %d", n, want)
			}
			if errs, clean := browsertest.Errors(dom); !clean || errs != "" {
				t.Errorf("script errors in the page (%s): %q", regexp.MustCompile(`<body[^>]*>`).FindString(dom), errs)
			}
			if bands := strings.Count(dom, `class="fault-band"`); bands != 6*2 {
				t.Errorf("%d fault bands, want 2 on each of the postgres+redis leg's 6 charts", bands)
			}
			if got := strings.Count(dom, "<svg"); got < want {
				t.Errorf("DOM has %d <svg> elements, want ≥ %d", got, want)
			}
			if shot := os.Getenv("HAL9_REPORT_SCREENSHOT"); shot != "" { // look at the page: HAL9_REPORT_SCREENSHOT=/tmp/x.png
				browsertest.Screenshot(t, bin, page, strings.TrimSuffix(shot, ".png")+map[bool]string{false: "-run", true: "-gate"}[gate]+".png")
			}
		})
	}
}

// TestHTMLReportsScriptErrors proves the marker check can fail: a page
// whose data is broken shows the error and no rendered marker.
func TestHTMLReportsScriptErrors(t *testing.T) {
	bin := browsertest.Chromium(t)
	dir := t.TempDir()
	if _, err := WriteAll(dir, fakeSummary(false)); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, HTMLFile)
	page, _ := os.ReadFile(p)
	broken := strings.Replace(string(page), `{"legs":[`, `{"legs":[null,`, 1)
	if broken == string(page) {
		t.Fatal("could not break the chart data")
	}
	os.WriteFile(p, []byte(broken), 0o644)
	dom := browsertest.DumpDOM(t, bin, p)
	if errs, clean := browsertest.Errors(dom); clean || !strings.Contains(errs, "script error:") {
		t.Errorf("a broken page was not caught:\n%s", browsertest.Head(dom, 1500))
	}
}
