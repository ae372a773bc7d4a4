package report

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

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
			page := "file://" + filepath.Join(dir, HTMLFile)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			out, err := exec.CommandContext(ctx, bin, browsertest.Args(t, "--virtual-time-budget=5000", "--dump-dom", page)...).Output()
			if err != nil {
				t.Fatalf("chromium --dump-dom: %v", err)
			}
			dom := string(out)
			m := regexp.MustCompile(`<body[^>]*data-rendered="(\d+) charts"`).FindStringSubmatch(dom)
			if m == nil {
				t.Fatalf("body has no data-rendered marker: the script did not finish\n%s", head(dom, 2000))
			}
			n, _ := strconv.Atoi(m[1])
			want := 6*len(s.Legs) + 3 // + the capacity leg's three curves
			if gate {
				want += len(s.Gate.Comparison.Results)
			}
			if n != want {
				t.Errorf("rendered %d charts, want %d", n, want)
			}
			if errs := errorBox(dom); !strings.Contains(dom, `data-errors="0"`) || errs != "" {
				t.Errorf("script errors in the page (%s): %q", regexp.MustCompile(`<body[^>]*>`).FindString(dom), errs)
			}
			if bands := strings.Count(dom, `class="fault-band"`); bands != 6*2 {
				t.Errorf("%d fault bands, want 2 on each of the postgres+redis leg's 6 charts", bands)
			}
			if got := strings.Count(dom, "<svg"); got < want {
				t.Errorf("DOM has %d <svg> elements, want ≥ %d", got, want)
			}
			if os.Getenv("HAL9_REPORT_SCREENSHOT") != "" { // look at the page: HAL9_REPORT_SCREENSHOT=/tmp/x.png
				shot := strings.TrimSuffix(os.Getenv("HAL9_REPORT_SCREENSHOT"), ".png") + map[bool]string{false: "-run", true: "-gate"}[gate] + ".png"
				if out, err := exec.CommandContext(ctx, bin, browsertest.Args(t, "--virtual-time-budget=5000", "--hide-scrollbars",
					"--window-size=1500,2600", "--screenshot="+shot, page)...).CombinedOutput(); err != nil {
					t.Errorf("screenshot: %v\n%s", err, out)
				}
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
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, browsertest.Args(t, "--virtual-time-budget=5000", "--dump-dom", "file://"+p)...).Output()
	if err != nil {
		t.Fatal(err)
	}
	dom := string(out)
	if strings.Contains(dom, `data-errors="0"`) || !strings.Contains(errorBox(dom), "script error:") {
		t.Errorf("a broken page was not caught:\n%s", head(dom, 1500))
	}
}

// errorBox returns the text of the page's #errors element.
func errorBox(dom string) string {
	m := regexp.MustCompile(`id="errors"[^>]*>([^<]*)<`).FindStringSubmatch(dom)
	if m == nil {
		return "(no #errors element)"
	}
	return strings.TrimSpace(m[1])
}

func head(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
