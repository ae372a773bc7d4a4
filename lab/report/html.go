package report

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"html/template"
	"strings"

	"github.com/hal9-lab/hal9-lab/lab/baseline"
)

//go:embed report.html.tmpl
var htmlTemplate string

//go:embed charts.js
var chartsJS string

//go:embed chartlib.js
var chartLibJS string

// ChartLib is the chart code report.html and history's trend.html share:
// a script that defines window.hal9Charts (lineChart and its helpers) and
// the page's error handler. Put it in a <script> before the page's own.
func ChartLib() template.JS { return template.JS(chartLibJS) }

// chartLeg is one column of charts: the first run of a leg (and role).
type chartLeg struct {
	Name      string          `json:"name"`
	Scenarios []chartScenario `json:"scenarios"`
	Faults    []chartFault    `json:"faults,omitempty"` // shaded bands (faults.go)
}

type chartScenario struct {
	Name   string        `json:"name"`
	Series []Point       `json:"series"`
	Server []ServerPoint `json:"server"`
}

type chartData struct {
	Legs     []chartLeg        `json:"legs"`
	Gate     []baseline.Result `json:"gate,omitempty"`
	Capacity []chartCapacity   `json:"capacity,omitempty"` // capacity.go
}

// HTML renders report.html: one self-contained page, no network. Tables
// are rendered here; the charts are drawn as inline SVG by an inline
// script from the embedded JSON. When the script has drawn them it sets
// data-rendered="N charts" on <body>; script errors are written into the
// page (#errors) and counted in data-errors, so a headless browser test
// can tell a broken page from a good one.
func HTML(s *RunSummary) ([]byte, error) {
	t, err := template.New("report").Funcs(template.FuncMap{
		"ms": ms, "pct": pct, "usd": usd, "usd0": usd0, "mib": mib, "legName": legName, "tiers": tiers,
		"shutdown": shutdown, "short": short, "num": num, "change": change, "runs": runs, "boundLabel": boundLabel, "boundNote": func() string { return strings.NewReplacer("*", "", "`", "").Replace(boundNote) }, "shortFunc": shortFunc, "flameLabel": flameLabel,
		"pct100": func(v float64) string { return fmt.Sprintf("%.1f", v*100) },
		"ratio":  ratio, "replicas": replicasHTML, "containers": containersHTML,
		"departures": departuresHTML, "capacity": capacityHTML, "onlyCapacity": onlyCapacity,
		"historyHeadline": (*History).headline, "signedPct": func(v float64) string { return fmt.Sprintf("%+.1f%%", 100*v) },
	}).Parse(htmlTemplate)
	if err != nil {
		return nil, fmt.Errorf("parse report template: %w", err)
	}
	data, err := json.Marshal(charts(s)) // escapes < > & so it is safe inside <script>
	if err != nil {
		return nil, fmt.Errorf("encode chart data: %w", err)
	}
	seed := s.Seed
	if seed.SustainedRPS == 0 {
		seed = DefaultSeed()
	}
	var gateGroups []GateGroup
	if s.Gate != nil {
		gateGroups = GateGroups(s.Gate.Comparison)
	}
	counts := map[string]int{}
	if s.Gate != nil {
		for v, n := range s.Gate.Comparison.Counts() {
			counts[string(v)] = n
		}
	}
	var buf bytes.Buffer
	err = t.Execute(&buf, map[string]any{
		"S": s, "Verdict": s.Verdict(), "Duration": duration(s), "Seed": seed,
		"GateGroups": gateGroups, "Counts": counts, "Faults": faultsHTML(s),
		"Data": template.JS(data), "Lib": ChartLib(), "Script": template.JS(chartsJS),
	})
	if err != nil {
		return nil, fmt.Errorf("render report.html: %w", err)
	}
	return buf.Bytes(), nil
}

// charts picks, per leg name and role, the first run's series.
func charts(s *RunSummary) chartData {
	var d chartData
	seen := map[string]bool{}
	for _, l := range s.Legs {
		name := legName(l)
		if seen[name] || len(l.Scenarios) == 0 {
			continue
		}
		seen[name] = true
		cl := chartLeg{Name: name, Faults: chartFaults(l)}
		for _, sc := range l.Scenarios {
			cl.Scenarios = append(cl.Scenarios, chartScenario{Name: sc.Name, Series: sc.Series, Server: sc.Server.Series})
		}
		d.Legs = append(d.Legs, cl)
	}
	if s.Gate != nil {
		d.Gate = s.Gate.Comparison.Results
	}
	d.Capacity = capacityCharts(s)
	return d
}
