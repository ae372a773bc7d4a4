package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hal9-lab/hal9-lab/lab/baseline"
	"github.com/hal9-lab/hal9-lab/lab/history"
	"github.com/hal9-lab/hal9-lab/lab/infra/infratest"
	"github.com/hal9-lab/hal9-lab/lab/report"
)

// writeCSV writes n nights of a P95 at 300 ms with 3 % noise (seeded),
// multiplied by 1+step from night at on (at < 0: no step), with spike
// (> 0) on night spikeAt; and a login op's flat series beside it.
func writeCSV(t *testing.T, n, at int, step float64, spikeAt int, spike float64) string {
	t.Helper()
	r := rand.New(rand.NewPCG(uint64(n*1000+at), 5))
	var b strings.Builder
	b.WriteString("time,commit,machine,profile,leg,scenario,op,metric,value\n")
	t0 := time.Date(2026, 3, 1, 3, 0, 0, 0, time.UTC)
	for i := range n {
		v := 300 * (1 + 0.03*r.NormFloat64())
		if at >= 0 && i >= at {
			v *= 1 + step
		}
		if i == spikeAt {
			v *= spike
		}
		day := t0.AddDate(0, 0, i).Format(time.RFC3339)
		fmt.Fprintf(&b, "%s,c%03d,ci box,nightly,sqlite,mix,,http_req_duration_p95_ms,%.2f\n", day, i, v)
		fmt.Fprintf(&b, "%s,c%03d,ci box,nightly,sqlite,mix,login,http_req_duration_p95_ms,%.2f\n", day, i, 40*(1+0.03*r.NormFloat64()))
	}
	p := filepath.Join(t.TempDir(), "history.csv")
	if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func exitCodeOf(err error) int {
	var ee *exitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.code
	}
	return 1
}

type exported struct {
	ChangePoints []struct {
		Leg, Scenario, Op, Metric, Commit, Direction string
		Index                                        int
		Change, P                                    float64
		InWindow                                     bool `json:"in_window"`
	} `json:"change_points"`
}

func readExport(t *testing.T, p string) exported {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var e exported
	if err := json.Unmarshal(data, &e); err != nil {
		t.Fatalf("%s: %v", p, err)
	}
	return e
}

// TestHistoryImportCheck is the "done when": a step imported from
// CSV is found within ±2 nights and fails the check (99) while it is in
// the window; once older it is reported and the check passes; a flat
// series with one bad night has no change point. On SQLite and PostgreSQL.
func TestHistoryImportCheck(t *testing.T) {
	ctx := context.Background()
	urls := map[string]func(*testing.T) string{
		"sqlite":   func(t *testing.T) string { return "sqlite://" + filepath.Join(t.TempDir(), "history.db") },
		"postgres": func(t *testing.T) string { return infratest.PostgresURL(t) },
	}
	for _, db := range []string{"sqlite", "postgres"} {
		t.Run(db, func(t *testing.T) {
			cases := []struct {
				name     string
				csv      string
				exit     int
				at       int // -1: no change point
				inWindow bool
			}{
				{"a step in the window", writeCSV(t, 34, 30, 0.08, -1, 0), 99, 30, true},
				{"the same step, older", writeCSV(t, 45, 30, 0.08, -1, 0), 0, 30, false},
				{"flat with one bad night", writeCSV(t, 40, -1, 0, 37, 1.6), 0, -1, false},
			}
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					url := urls[db](t)
					if err := runHistory(ctx, []string{"import", "--history", url, "--csv", c.csv}); err != nil {
						t.Fatal(err)
					}
					if err := runHistory(ctx, []string{"import", "--history", url, "--csv", c.csv}); err != nil {
						t.Fatalf("importing twice: %v", err)
					}
					exp := filepath.Join(t.TempDir(), "cp.json")
					err := runHistory(ctx, []string{"check", "--history", url, "--summary-export", exp})
					if got := exitCodeOf(err); got != c.exit {
						t.Fatalf("check exit %d (%v), want %d", got, err, c.exit)
					}
					e := readExport(t, exp)
					var agg int
					for _, cp := range e.ChangePoints {
						if cp.Op != "" {
							t.Errorf("a change point in the flat login series: %+v", cp)
							continue
						}
						agg++
						if cp.Index < c.at-2 || cp.Index > c.at+2 || cp.Direction != history.Regression || cp.InWindow != c.inWindow ||
							cp.Leg != "sqlite" || cp.Scenario != "mix" || cp.Metric != baseline.ReqDurationP95 || cp.Commit != fmt.Sprintf("c%03d", cp.Index) {
							t.Errorf("change point %+v, want a regression at %d±2, in window %v", cp, c.at, c.inWindow)
						}
					}
					if want := map[bool]int{true: 1, false: 0}[c.at >= 0]; agg != want {
						t.Errorf("%d change points in the aggregate series, want %d: %+v", agg, want, e.ChangePoints)
					}
				})
			}
		})
	}
}

// TestHistoryAddAndReport adds a gate's summary (--against: absolute
// values and ratios, with the lab's own LegSamples), then writes the
// trend page.
func TestHistoryAddAndReport(t *testing.T) {
	ctx := context.Background()
	url := "sqlite://" + filepath.Join(t.TempDir(), "h.db")
	dir := t.TempDir()
	legOf := func(role string, run int, p95 float64) report.Leg {
		return report.Leg{Name: "sqlite", Role: role, Run: run, Scenarios: []report.Scenario{{Name: "mix", Passed: true,
			Metrics: report.Metrics{HTTPReqs: 100, ReqP95: p95, ReqP50: p95 / 3}}}}
	}
	sum := &report.RunSummary{Version: report.Version, Command: "gate", Profile: "nightly", StartedAt: time.Date(2026, 5, 1, 3, 0, 0, 0, time.UTC),
		Commit: strings.Repeat("ab", 20), Machine: baseline.DescribeMachine(),
		Gate: &report.Gate{Mode: "against", Against: strings.Repeat("cd", 20), Runs: 2},
		Legs: []report.Leg{legOf("candidate", 1, 330), legOf("reference", 1, 300), legOf("candidate", 2, 320), legOf("reference", 2, 320)}}
	if _, err := report.WriteAll(dir, sum); err != nil {
		t.Fatal(err)
	}
	if err := runHistory(ctx, []string{"add", "--history", url, dir}); err != nil {
		t.Fatal(err)
	}
	if err := runHistory(ctx, []string{"add", "--history", url, filepath.Join(dir, report.SummaryFile)}); err != nil {
		t.Fatalf("adding the same summary again: %v", err)
	}
	st, err := history.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	runs, err := st.Runs(ctx, "nightly")
	st.Close()
	if err != nil || len(runs) != 1 {
		t.Fatalf("%d runs (%v), want 1", len(runs), err)
	}
	kinds := map[history.Kind]int{}
	for _, v := range runs[0].Values {
		kinds[v.Kind]++
	}
	if runs[0].Reference != strings.Repeat("cd", 20) || kinds[history.Absolute] == 0 || kinds[history.Ratio] == 0 {
		t.Errorf("run %+v: values by kind %v, want absolute and ratio ones and the reference commit", runs[0].ID, kinds)
	}
	out := filepath.Join(t.TempDir(), "trend")
	if err := runHistory(ctx, []string{"report", "--history", url, "--out", out}); err != nil {
		t.Fatal(err)
	}
	page, err := os.ReadFile(filepath.Join(out, history.TrendFile))
	if err != nil || !strings.Contains(string(page), "http_req_duration_p95_ms") {
		t.Errorf("trend.html: %v", err)
	}

	lab := t.TempDir()
	bad := *sum
	bad.LabErrors = []string{"sqlite run 1 failed"}
	report.WriteAll(lab, &bad)
	if err := runHistory(ctx, []string{"add", "--history", url, lab, "/nonexistent"}); exitCodeOf(err) != 1 ||
		!strings.Contains(err.Error(), "2 of 2 not added") || !strings.Contains(err.Error(), "lab errors") {
		t.Errorf("adding a summary with lab errors and a missing one: %v", err)
	}
}

// TestHistoryGateReport: check --gate-report puts the window's change
// points into the gate's own report (md, html, summary.json) and writes
// trend.html beside it; a flat history adds a section without points.
func TestHistoryGateReport(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		name   string
		csv    string
		exit   int
		points int
	}{
		{"a step in the window", writeCSV(t, 34, 30, 0.08, -1, 0), 99, 1},
		{"flat", writeCSV(t, 34, -1, 0, -1, 0), 0, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			url := "sqlite://" + filepath.Join(t.TempDir(), "h.db")
			if err := runHistory(ctx, []string{"import", "--history", url, "--csv", c.csv}); err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			sum := &report.RunSummary{Version: report.Version, Command: "gate", Profile: "nightly", StartedAt: time.Now().UTC(),
				Gate: &report.Gate{Mode: "baseline", Baseline: "reports/baselines/nightly.json", Runs: 4, Verdict: "pass"}}
			if _, err := report.WriteAll(dir, sum); err != nil {
				t.Fatal(err)
			}
			err := runHistory(ctx, []string{"check", "--history", url, "--gate-report", dir})
			if got := exitCodeOf(err); got != c.exit {
				t.Fatalf("check exit %d (%v), want %d", got, err, c.exit)
			}
			got, err := report.Load(filepath.Join(dir, report.SummaryFile))
			if err != nil {
				t.Fatal(err)
			}
			h := got.History
			if h == nil || len(h.Points) != c.points || h.Regressions() != c.points || h.Trend != history.TrendFile {
				t.Fatalf("summary's history %+v, want %d regression(s) and trend.html", h, c.points)
			}
			md, _ := os.ReadFile(filepath.Join(dir, report.MarkdownFile))
			page, _ := os.ReadFile(filepath.Join(dir, report.HTMLFile))
			for name, text := range map[string]string{"report.md": string(md), "report.html": string(page)} {
				if !strings.Contains(text, "History") || strings.Contains(text, "sqlite/mix/http_req_duration_p95_ms") != (c.points > 0) {
					t.Errorf("%s: History section with the stepped series %v? got:\n%s", name, c.points > 0, text)
				}
			}
			if _, err := os.Stat(filepath.Join(dir, history.TrendFile)); err != nil {
				t.Errorf("trend.html beside the report: %v", err)
			}
		})
	}
}

func TestHistoryFlagErrors(t *testing.T) {
	csv := writeCSV(t, 3, -1, 0, -1, 0)
	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, "want a command"},
		{[]string{"prune"}, `unknown command "prune"`},
		{[]string{"add"}, "want one or more run directories"},
		{[]string{"import"}, "--csv FILE"},
		{[]string{"import", "--csv", "/nonexistent.csv"}, "--csv"},
		{[]string{"check", "--window", "0"}, "--window 0"},
		{[]string{"check", "--min-change", "2"}, "want a percentage"},
		{[]string{"check", "--significance", "5"}, "--significance 5"},
		{[]string{"check", "stray"}, `unexpected argument "stray"`},
		{[]string{"report"}, "--out DIR"},
		{[]string{"import", "--csv", csv, "--nope"}, "flag provided but not defined"},
	} {
		err := runHistory(context.Background(), c.args)
		if exitCodeOf(err) != 2 || !strings.Contains(err.Error(), c.want) {
			t.Errorf("history %v: %v (exit %d), want exit 2 mentioning %q", c.args, err, exitCodeOf(err), c.want)
		}
	}
	err := runHistory(context.Background(), []string{"check", "--history", "mysql://x"})
	if exitCodeOf(err) != 1 || !strings.Contains(err.Error(), "sqlite://PATH") {
		t.Errorf("a bad history URL: %v", err)
	}
}
