package history

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hal9-lab/hal9-lab/lab/baseline"
)

// nights makes one run a night from 2026-01-01 with one value of key each.
func nights(machine, reference string, key Key, kind Kind, values ...float64) []Run {
	var out []Run
	for i, v := range values {
		out = append(out, Run{ID: machine + reference + strconv.Itoa(i), Time: time.Date(2026, 1, 1+i, 3, 0, 0, 0, time.UTC),
			Commit: "c" + strconv.Itoa(i), Profile: "nightly", Machine: machine, Reference: reference,
			Values: []Value{{Key: key, Kind: kind, Repetition: 1, Value: v}}})
	}
	return out
}

var p95 = Key{Leg: "sqlite", Scenario: "mix", Metric: baseline.ReqDurationP95}

func TestBuildSeries(t *testing.T) {
	var runs []Run
	runs = append(runs, nights("box A", "", p95, Absolute, 1, 2, 3, 4, 5, 6, 7)...)
	runs = append(runs, nights("box B", "", p95, Absolute, 10, 20)...)
	// A gate --against a fixed reference on box C: its ratios are judged,
	// its absolute values left out.
	fixed := nights("box C", "v1.0", p95, Ratio, 1.01, 1.02, 1.0, 0.99, 1.0, 1.01)
	for i := range fixed {
		fixed[i].Values = append(fixed[i].Values, Value{Key: p95, Kind: Absolute, Repetition: 1, Value: 300}, Value{Key: p95, Kind: Ratio, Repetition: 2, Value: 1.03})
	}
	runs = append(runs, fixed...)
	// --against HEAD~1: a reference a night; shown pooled, not judged.
	for i, r := range nights("box D", "", p95, Ratio, 1.1, 0.9) {
		r.Reference = "parent" + strconv.Itoa(i)
		runs = append(runs, r)
	}
	got := map[string]Series{}
	for _, s := range BuildSeries(runs, 6) {
		got[string(s.Kind)+" "+s.Group] = s
	}
	check := func(name string, n int, judged bool) Series {
		t.Helper()
		s, ok := got[name]
		if !ok || len(s.Points) != n || s.Judged != judged {
			t.Errorf("%s: %d points, judged %v (present %v); want %d, %v", name, len(s.Points), s.Judged, ok, n, judged)
		}
		return s
	}
	a := check("absolute box A", 7, true)
	check("absolute box B", 2, false)
	c := check("ratio v1.0", 6, true)
	check("ratio "+MovingReference, 2, false)
	if _, ok := got["absolute box C"]; ok {
		t.Error("box C's absolute values are in a series although its ratios are judged")
	}
	if len(got) != 4 {
		t.Errorf("series %v", len(got))
	}
	if a.Points[0].Value != 1 || a.Points[6].Commit != "c6" || a.Unit != "ms" {
		t.Errorf("box A: %+v", a)
	}
	if c.Points[0].Value != 1.02 || c.Points[0].N != 2 { // median of 1.01 and 1.03
		t.Errorf("ratio point: %+v, want the median of two repetitions", c.Points[0])
	}
}

func seriesOf(metric string, x []float64) Series {
	s := synthetic(x)
	s.Metric = metric
	return s
}

func steps(seed uint64, n, at int, noise, step float64) []float64 {
	r := rand.New(rand.NewPCG(seed, 11))
	x := noisy(r, n, noise)
	for i := at; i < n; i++ {
		x[i] *= 1 + step
	}
	return x
}

// testOptions are the defaults with fewer window permutations (999 still
// reach p = 0.001, under the window's level): quick under -race.
func testOptions() Options {
	o := DefaultOptions()
	o.WindowPermutations = 999
	return o
}

func TestCheck(t *testing.T) {
	o := testOptions()
	cases := []struct {
		name     string
		s        Series
		wantAt   []int    // change points
		wantDir  []string // their directions
		regress  bool     // a regression in the window
		inWindow []bool
	}{
		{"latency up in the window", seriesOf(baseline.ReqDurationP95, steps(1, 34, 30, 0.01, 0.10)), []int{30}, []string{Regression}, true, []bool{true}},
		{"throughput down in the window", seriesOf(baseline.AchievedRate, steps(2, 34, 30, 0.01, -0.10)), []int{30}, []string{Regression}, true, []bool{true}},
		{"throughput up: an improvement, not in the window's test", seriesOf(baseline.AchievedRate, steps(3, 34, 30, 0.01, 0.10)), nil, nil, false, nil},
		{"an old regression", seriesOf(baseline.ReqDurationP95, steps(4, 40, 15, 0.01, 0.10)), []int{15}, []string{Regression}, false, []bool{false}},
		{"an old improvement", seriesOf(baseline.ReqDurationP95, steps(5, 40, 15, 0.01, -0.10)), []int{15}, []string{Improvement}, false, []bool{false}},
		{"flat", seriesOf(baseline.ReqDurationP95, steps(6, 40, 0, 0.03, 0)), nil, nil, false, nil},
		{"one bad night at the end", seriesOf(baseline.ReqDurationP95, append(steps(7, 39, 0, 0.03, 0), 190)), nil, nil, false, nil},
		{"a significant step under the minimum change", seriesOf(baseline.ReqDurationP95, steps(8, 40, 20, 0.001, 0.01)), nil, nil, false, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res := Check([]Series{c.s}, o)
			if len(res.ChangePoints) != len(c.wantAt) {
				t.Fatalf("change points %+v, want at %v", res.ChangePoints, c.wantAt)
			}
			for i, cp := range res.ChangePoints {
				if cp.Index < c.wantAt[i]-1 || cp.Index > c.wantAt[i]+1 || cp.Direction != c.wantDir[i] || cp.InWindow != c.inWindow[i] {
					t.Errorf("change point at %d, %s, in window %v; want at %d±1, %s, in window %v", cp.Index, cp.Direction, cp.InWindow, c.wantAt[i], c.wantDir[i], c.inWindow[i])
				}
				if cp.P <= 0 || cp.P >= o.Significance || cp.Commit != c.s.Points[cp.Index].Commit || cp.PreviousCommit != c.s.Points[cp.Index-1].Commit {
					t.Errorf("change point at %d: p %v, commits %s..%s", cp.Index, cp.P, cp.PreviousCommit, cp.Commit)
				}
				if math.Abs(cp.Change-(cp.After-cp.Before)/cp.Before) > 1e-12 || math.Abs(math.Abs(cp.Change)-0.10) > 0.03 {
					t.Errorf("change %v from %v to %v, want about ±10 %%", cp.Change, cp.Before, cp.After)
				}
			}
			if got := len(res.Regressions()) > 0; got != c.regress {
				t.Errorf("regression in the window: %v, want %v", got, c.regress)
			}
		})
	}
}

// TestCheckErrorRateFloor: the error rate moves by points, not percent: a
// step of 0.1 points (from 0) is not a change, one of 2 points is.
func TestCheckErrorRateFloor(t *testing.T) {
	small, big := make([]float64, 36), make([]float64, 36)
	for i := 31; i < 36; i++ { // the last 5 nights: the window
		small[i], big[i] = 0.001, 0.02
	}
	res := Check([]Series{seriesOf(baseline.ErrorRate, small), seriesOf(baseline.ErrorRate, big)}, testOptions())
	if len(res.Regressions()) != 1 || res.Regressions()[0].After != 0.02 {
		t.Errorf("regressions %+v, want only the 2-point step", res.Regressions())
	}
}

func TestCheckSkipsUnjudged(t *testing.T) {
	s := seriesOf(baseline.ReqDurationP95, steps(1, 34, 30, 0.01, 0.10))
	s.Judged = false
	res := Check([]Series{s}, testOptions())
	if len(res.ChangePoints) != 0 || res.Shown != 1 || res.Judged != 0 {
		t.Errorf("an unjudged series was checked: %+v", res)
	}
}

// TestCheckRepeatable: the same history gives the same answer.
func TestCheckRepeatable(t *testing.T) {
	s := []Series{seriesOf(baseline.ReqDurationP95, steps(9, 34, 30, 0.03, 0.06))}
	a, _ := json.Marshal(Check(s, testOptions()).ChangePoints)
	b, _ := json.Marshal(Check(s, testOptions()).ChangePoints)
	if string(a) != string(b) {
		t.Errorf("two checks differ:\n%s\n%s", a, b)
	}
}

func TestBenjaminiHochberg(t *testing.T) {
	cases := []struct {
		ps   []float64
		q    float64
		m    int
		want int
	}{
		{[]float64{0.001, 0.008, 0.039, 0.041, 0.042}, 0.05, 5, 5},
		{[]float64{0.001, 0.03}, 0.05, 10, 1},
		{[]float64{0.009}, 0.01, 1, 1},
		{[]float64{0.009}, 0.01, 2, 0},
		{[]float64{0.004, 0.009}, 0.01, 2, 2}, // the second lifts the first's bar
		{nil, 0.01, 3, 0},
	}
	for _, c := range cases {
		if got := benjaminiHochberg(c.ps, c.q, c.m); got != c.want {
			t.Errorf("BH(%v, q %v, m %d) = %d, want %d", c.ps, c.q, c.m, got, c.want)
		}
	}
}

func TestWriteExport(t *testing.T) {
	res := Check([]Series{seriesOf(baseline.ReqDurationP95, steps(1, 34, 30, 0.01, 0.10))}, testOptions())
	p := filepath.Join(t.TempDir(), "cp.json")
	if err := WriteExport(p, res); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(p)
	var doc struct {
		ChangePoints []map[string]any `json:"change_points"`
	}
	if err := json.Unmarshal(data, &doc); err != nil || len(doc.ChangePoints) != 1 {
		t.Fatalf("export %s: %v", data, err)
	}
	for _, f := range []string{"leg", "scenario", "op", "metric", "index", "time", "commit", "before", "after", "change", "p", "direction"} {
		if _, ok := doc.ChangePoints[0][f]; !ok {
			t.Errorf("the export lacks %q: %s", f, data)
		}
	}
	if doc.ChangePoints[0]["direction"] != Regression {
		t.Errorf("direction %v", doc.ChangePoints[0]["direction"])
	}
	empty := filepath.Join(t.TempDir(), "none.json")
	WriteExport(empty, Result{})
	if data, _ := os.ReadFile(empty); !strings.Contains(string(data), `"change_points": []`) {
		t.Errorf("an empty export: %s", data)
	}
}

// TestCheckManySeries: one regression among 100 series still fails the
// check: Benjamini–Hochberg's first bar is q/100 = 0.00008, so the window's
// test needs more than 9,999 permutations, and gets them.
func TestCheckManySeries(t *testing.T) {
	var series []Series
	for i := range 100 {
		s := seriesOf(baseline.ReqDurationP95, steps(uint64(1000+i), 40, 0, 0.03, 0))
		s.Scenario = "flat" + strconv.Itoa(i)
		series = append(series, s)
	}
	stepped := seriesOf(baseline.ReqDurationP95, steps(7, 40, 36, 0.02, 0.15))
	series = append(series, stepped)
	res := Check(series, testOptions())
	regs := res.Regressions()
	if len(regs) != 1 || regs[0].Scenario != "mix" || regs[0].Index < 35 || regs[0].Index > 37 {
		t.Fatalf("regressions %d (%+v), want the stepped series' alone", len(regs), regs)
	}
	if regs[0].P > 0.008/101 {
		t.Errorf("p %v above Benjamini–Hochberg's first bar", regs[0].P)
	}
}
