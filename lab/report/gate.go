package report

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/hal9-lab/hal9-lab/lab/baseline"
)

// verdictOrder puts regressions first, then what could not be judged.
var verdictOrder = map[baseline.Verdict]int{baseline.Regressed: 0, baseline.Inconclusive: 1, baseline.Improved: 2, baseline.Pass: 3}

// GateGroup is one operation's rows of the verdict table (Op "" is the
// scenario's aggregate).
type GateGroup struct {
	Leg, Scenario, Op string
	// Worst is the group's most urgent verdict (it orders the groups).
	Worst baseline.Verdict
	Rows  []baseline.Result
}

// Title is "sqlite · smoke · signal" ("all requests" for the aggregate).
func (g GateGroup) Title() string {
	op := g.Op
	if op == "" {
		op = "all requests"
	}
	return g.Leg + " · " + g.Scenario + " · " + op
}

// GateGroups groups a gate's results by leg × scenario × op: groups with
// a regression first (then inconclusive, improved, pass), within a verdict
// the operations before the aggregate (they say where; the aggregate is
// their sum), and in each group its rows by verdict then metric; so the
// first rows are an operation's regressed ones.
func GateGroups(c baseline.Comparison) []GateGroup {
	type gk struct{ leg, scenario, op string }
	idx := map[gk]int{}
	var gs []GateGroup
	for _, r := range c.Results {
		k := gk{r.Leg, r.Scenario, r.Op}
		i, ok := idx[k]
		if !ok {
			i = len(gs)
			idx[k] = i
			gs = append(gs, GateGroup{Leg: r.Leg, Scenario: r.Scenario, Op: r.Op, Worst: baseline.Pass})
		}
		gs[i].Rows = append(gs[i].Rows, r)
		if verdictOrder[r.Verdict] < verdictOrder[gs[i].Worst] {
			gs[i].Worst = r.Verdict
		}
	}
	for _, g := range gs {
		sort.SliceStable(g.Rows, func(i, j int) bool {
			a, b := g.Rows[i], g.Rows[j]
			if verdictOrder[a.Verdict] != verdictOrder[b.Verdict] {
				return verdictOrder[a.Verdict] < verdictOrder[b.Verdict]
			}
			return a.Metric < b.Metric
		})
	}
	sort.SliceStable(gs, func(i, j int) bool {
		a, b := gs[i], gs[j]
		if verdictOrder[a.Worst] != verdictOrder[b.Worst] {
			return verdictOrder[a.Worst] < verdictOrder[b.Worst]
		}
		if (a.Op == "") != (b.Op == "") {
			return b.Op == ""
		}
		if a.Leg != b.Leg {
			return a.Leg < b.Leg
		}
		if a.Scenario != b.Scenario {
			return a.Scenario < b.Scenario
		}
		return a.Op < b.Op
	})
	return gs
}

// runs renders per-run values compactly in the metric's unit: "201 · 205 · 212".
func runs(vs []float64, unit string) string {
	parts := make([]string, len(vs))
	for i, v := range vs {
		switch unit {
		case "ms":
			parts[i] = strconv.FormatFloat(roundSig(v, 3), 'f', -1, 64)
		case "ratio":
			parts[i] = strconv.FormatFloat(roundSig(v*100, 2), 'f', -1, 64) + "%"
		default:
			parts[i] = strconv.FormatFloat(roundSig(v, 4), 'g', -1, 64)
		}
	}
	return strings.Join(parts, " · ")
}

// roundSig rounds to n significant digits (whole numbers stay whole).
func roundSig(v float64, n int) float64 {
	if v == 0 {
		return 0
	}
	f, _ := strconv.ParseFloat(strconv.FormatFloat(v, 'g', n, 64), 64)
	if f >= 1000 || v >= 1000 {
		return float64(int64(v + 0.5))
	}
	return f
}

// boundLabel is the "time depends on" cell.
func boundLabel(b string) string {
	switch b {
	case "llm":
		return "LLM (any machine)"
	case "":
		return "—"
	}
	return b
}

// boundNote explains the "depends on" column when a table has it.
const boundNote = "*Depends on*: what a series' time is made of. `cpu (bcrypt)`: the credential routes (register, login) hash passwords at a bcrypt cost, so they scale with this machine's CPU; `cpu`: other routes' database and JSON work on this machine; `LLM (any machine)`: time in the simulated LLM (signals), the same on any machine; `mixed`: a scenario's aggregate over all of them. A baseline from another machine moves the `cpu` rows, not the LLM ones."

func writeGateTable(b *strings.Builder, c baseline.Comparison) {
	b.WriteString("| verdict | metric | depends on | baseline | now | change | p | min effect | baseline runs | runs now |\n| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | --- | --- |\n")
	for _, g := range GateGroups(c) {
		fmt.Fprintf(b, "| **%s** | | | | | | | | | |\n", g.Title())
		for _, r := range g.Rows {
			eff := r.MinEffect
			if r.Calibrated {
				eff += " (2× spread)"
			}
			fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %s | %.3f | %s | %s | %s |\n", verdictIcon(r.Verdict), r.Metric, boundLabel(r.Bound),
				num(r.BaseMedian, r.Unit), num(r.CandMedian, r.Unit), change(r), r.P, eff, runs(r.Baseline, r.Unit), runs(r.Candidate, r.Unit))
		}
	}
	b.WriteString("\n" + boundNote + "\n\n")
}
