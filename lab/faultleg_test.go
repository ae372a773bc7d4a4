package lab_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hal9-lab/hal9-lab/lab"
	"github.com/hal9-lab/hal9-lab/lab/ledger"
	"github.com/hal9-lab/hal9-lab/lab/report"
)

// TestRunFaults: a short lab run with a fault of most kinds on PostgreSQL
// + Redis: each is injected and healed, judged, in every report format,
// and the ledger finds every acknowledged write in the database.
func TestRunFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: starts PostgreSQL, Redis and the server")
	}
	sum, out := runTestProfile(t, "faults-profile.yaml", lab.Options{})
	if len(sum.Legs) == 0 {
		t.Skipf("the postgres+redis leg did not run: %+v", sum.Skipped)
	}
	l := sum.Legs[0]
	if l.Ledger == nil || !l.Ledger.OK() || l.Ledger.Acknowledged == 0 || l.Ledger.Source != "database" {
		t.Fatalf("ledger %+v", l.Ledger)
	}
	entries, err := ledger.ReadFile(l.Ledger.File)
	if err != nil || len(entries) != l.Ledger.Acknowledged {
		t.Errorf("ledger file %s: %d entries, %v; verdict counted %d", l.Ledger.File, len(entries), err, l.Ledger.Acknowledged)
	}
	kinds := map[string]report.FaultResult{}
	for _, f := range l.Faults {
		kinds[f.Target+" "+f.Kind] = f
		if f.Error != "" {
			t.Errorf("%s: %s", f.Name, f.Error)
		}
		if f.Target != "server" && f.Tried == 0 {
			t.Errorf("%s: no request counted in its window", f.Name)
		}
	}
	for _, k := range []string{"server port-taken", "redis kill", "postgres crash", "network latency", "server sigkill", "server sigterm"} {
		f, ok := kinds[k]
		if !ok {
			t.Errorf("no result for %s: %+v", k, l.Faults)
			continue
		}
		for _, c := range f.Checks {
			// A loaded machine can stretch a recovery; the mechanism is what
			// this test is about, the verdicts are tested on synthetic series.
			if !c.OK && !strings.HasPrefix(c.Name, "recovered") {
				t.Errorf("%s: %s: %s", f.Name, c.Name, c.Detail)
			}
		}
	}
	if f := kinds["server sigkill"]; !strings.Contains(strings.Join(f.Notes, " "), "write-behind loss window") {
		t.Errorf("the SIGKILL did not measure the write-behind loss window: %v", f.Notes)
	}
	if f := kinds["postgres crash"]; f.FailedByStatus["500"] != 0 {
		t.Errorf("500s during the crash: %v", f.FailedByStatus)
	}
	md, _ := os.ReadFile(filepath.Join(out, report.MarkdownFile))
	html, _ := os.ReadFile(filepath.Join(out, report.HTMLFile))
	junit, _ := os.ReadFile(filepath.Join(out, report.JUnitFile))
	for name, body := range map[string][]byte{"report.md": md, "report.html": html, "junit.xml": junit} {
		for _, want := range []string{"redis kill at 2s", "postgres crash at 5s", "ledger"} {
			if !strings.Contains(string(body), want) {
				t.Errorf("%s lacks %q", name, want)
			}
		}
	}
	if !strings.Contains(string(html), `"faults":[`) {
		t.Error("report.html's chart data has no fault bands")
	}
}
