package report

import (
	"fmt"
	"html/template"
	"sort"
	"strings"
)

// FaultResult is one fault of a leg's timeline: what was broken, what it
// cost the clients, how fast it was noticed and healed, and the verdicts
// the lab asserts for its kind (docs/faults.md).
type FaultResult struct {
	Name    string `json:"name"`   // "postgres crash at 1m for 20s"
	Target  string `json:"target"` // redis, postgres, network, llm, server
	Kind    string `json:"kind"`
	Replica int    `json:"replica"`
	// Options are the kind's settings ("backend": "postgres", "latency": "200ms").
	Options map[string]string `json:"options,omitempty"`
	// Start and Healed are Unix ms: when the fault was injected and when
	// it was taken away (the backend answering again, the server ready).
	Start  int64 `json:"start"`
	Healed int64 `json:"healed"`
	// Tried is the requests started in [Start, Healed + 5 s]; Failed those
	// that failed, FailedByStatus by status ("0" = no response).
	Tried          float64            `json:"tried"`
	Failed         float64            `json:"failed"`
	FailedByStatus map[string]float64 `json:"failed_by_status,omitempty"`
	// DetectMS is the time from injection to the first sign of it (a
	// failed request or /readyz no longer "ready"), DetectedBy says
	// which; nil when nothing showed.
	DetectMS   *float64 `json:"detect_ms,omitempty"`
	DetectedBy string   `json:"detected_by,omitempty"`
	// RecoverMS is the time from Healed until the error rate stayed under
	// 1 % for 3 s (0 when it never rose to 1 %); nil: not within the run.
	RecoverMS *float64 `json:"recover_ms,omitempty"`
	// Cache hit rate (server side) in the 15 s before and during the fault,
	// and its dip in points; -1 when unknown.
	CacheHitBefore float64 `json:"cache_hit_before"`
	CacheHitDuring float64 `json:"cache_hit_during"`
	// LLM cost per 1,000 requests before and during; CostChange is
	// during/before − 1 (0 when unknown).
	CostPer1KBefore float64 `json:"cost_per_1k_before"`
	CostPer1KDuring float64 `json:"cost_per_1k_during"`
	CostChange      float64 `json:"cost_change"`
	// Checks are the verdicts asserted for this kind.
	Checks []FaultCheck `json:"checks"`
	// Alerts: with --prometheus, the alert meant for the fault, the alerts
	// that fired while it lasted, and those of them that nothing explains.
	Alerts *FaultAlerts `json:"alerts,omitempty"`
	Notes  []string     `json:"notes,omitempty"`
	Error  string       `json:"error,omitempty"` // injecting or healing failed
}

// FaultCheck is one asserted verdict.
type FaultCheck struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail,omitempty"`
}

// FaultAlerts are the Prometheus alerts around one fault.
type FaultAlerts struct {
	Meant     []string `json:"meant,omitempty"`
	Fired     []string `json:"fired,omitempty"`
	Unrelated []string `json:"unrelated,omitempty"`
}

// Passed: injected and healed, and every check passed.
func (f FaultResult) Passed() bool {
	if f.Error != "" {
		return false
	}
	for _, c := range f.Checks {
		if !c.OK {
			return false
		}
	}
	return true
}

// faultsFailed: a fault of the leg failed its verdicts.
func faultsFailed(fs []FaultResult) bool {
	for _, f := range fs {
		if !f.Passed() {
			return true
		}
	}
	return false
}

func msOrDash(p *float64) string {
	if p == nil {
		return "—"
	}
	if *p >= 10000 {
		return fmt.Sprintf("%.1f s", *p/1000)
	}
	return fmt.Sprintf("%.0f ms", *p)
}

// StatusList names failures by status: "503×3, no response×1".
func StatusList(m map[string]float64) string {
	if len(m) == 0 {
		return "—"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		name := k
		if k == "0" {
			name = "no response"
		}
		parts = append(parts, fmt.Sprintf("%s×%.0f", name, m[k]))
	}
	return strings.Join(parts, ", ")
}

func hitDip(f FaultResult) string {
	if f.CacheHitBefore < 0 || f.CacheHitDuring < 0 {
		return "—"
	}
	return fmt.Sprintf("%.0f%% → %.0f%%", f.CacheHitBefore*100, f.CacheHitDuring*100)
}

func costChange(f FaultResult) string {
	if f.CostPer1KBefore == 0 && f.CostPer1KDuring == 0 {
		return "—"
	}
	return fmt.Sprintf("$%.3f → $%.3f (%+.0f%%)", f.CostPer1KBefore, f.CostPer1KDuring, f.CostChange*100)
}

func (f FaultResult) failedChecks() []string {
	var out []string
	for _, c := range f.Checks {
		if !c.OK {
			out = append(out, c.Name+": "+c.Detail)
		}
	}
	if f.Error != "" {
		out = append(out, f.Error)
	}
	return out
}

func alertsCell(a *FaultAlerts) string {
	if a == nil {
		return "—"
	}
	s := "meant: " + OrNone(a.Meant) + "; fired: " + OrNone(a.Fired)
	if len(a.Unrelated) > 0 {
		s += "; UNRELATED: " + strings.Join(a.Unrelated, ", ")
	}
	return s
}

// OrNone joins s with commas, "none" when empty.
func OrNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

// writeFaults is report.md's faults section: one table per leg run with
// faults, the failed checks and the ledger verdicts.
func writeFaults(b *strings.Builder, s *RunSummary) {
	any := false
	for _, l := range s.Legs {
		if len(l.Faults) > 0 || l.Ledger != nil {
			any = true
		}
	}
	if !any {
		return
	}
	b.WriteString("## Faults and acknowledged writes\n\n")
	for _, l := range s.Legs {
		if l.Ledger != nil {
			icon := "✔️"
			if !l.Ledger.OK() {
				icon = "❌"
			}
			fmt.Fprintf(b, "%s **%s run %d ledger**: %s\n\n", icon, legName(l), l.Run, l.Ledger.Line())
			for _, x := range l.Ledger.LostSample {
				fmt.Fprintf(b, "- lost: %s\n", x)
			}
			if len(l.Ledger.LostSample) > 0 {
				b.WriteString("\n")
			}
		}
		if len(l.Faults) == 0 {
			continue
		}
		fmt.Fprintf(b, "**%s run %d**: %d faults\n\n", legName(l), l.Run, len(l.Faults))
		b.WriteString("| fault | verdict | tried | failed (by status) | detect | recover | cache hit | cost / 1k req | alerts |\n| --- | --- | ---: | --- | ---: | ---: | --- | --- | --- |\n")
		for _, f := range l.Faults {
			v := "✔️ pass"
			if !f.Passed() {
				v = "❌ fail"
			}
			fmt.Fprintf(b, "| %s | %s | %.0f | %.0f (%s) | %s | %s | %s | %s | %s |\n", cell(f.Name), v, f.Tried, f.Failed, StatusList(f.FailedByStatus),
				msOrDash(f.DetectMS), msOrDash(f.RecoverMS), hitDip(f), costChange(f), cell(alertsCell(f.Alerts)))
		}
		b.WriteString("\n")
		for _, f := range l.Faults {
			for _, c := range f.failedChecks() {
				fmt.Fprintf(b, "- ❌ %s: %s\n", f.Name, c)
			}
			for _, n := range f.Notes {
				fmt.Fprintf(b, "- %s: %s\n", f.Name, n)
			}
		}
		b.WriteString("\n")
	}
}

// faultsHTML is report.html's faults section.
func faultsHTML(s *RunSummary) template.HTML {
	var b strings.Builder
	for _, l := range s.Legs {
		if l.Ledger != nil {
			cls := "b-pass"
			if !l.Ledger.OK() {
				cls = "b-fail"
			}
			fmt.Fprintf(&b, `<p><span class="badge %s">ledger</span> <b>%s run %d</b>: %s</p>`, cls, template.HTMLEscapeString(legName(l)), l.Run, template.HTMLEscapeString(l.Ledger.Line()))
		}
		if len(l.Faults) == 0 {
			continue
		}
		fmt.Fprintf(&b, `<h3>%s run %d</h3><table><tr><th>fault</th><th>verdict</th><th class="n">tried</th><th>failed (by status)</th><th class="n">detect</th><th class="n">recover</th><th>cache hit</th><th>cost / 1k req</th><th>alerts</th></tr>`,
			template.HTMLEscapeString(legName(l)), l.Run)
		for _, f := range l.Faults {
			v := `<span class="badge b-pass">pass</span>`
			if !f.Passed() {
				v = `<span class="badge b-fail">fail</span>`
			}
			var detail strings.Builder
			for _, c := range f.Checks {
				mark := "✔"
				if !c.OK {
					mark = "✘"
				}
				fmt.Fprintf(&detail, "%s %s %s\n", mark, c.Name, c.Detail)
			}
			for _, n := range f.Notes {
				detail.WriteString(n + "\n")
			}
			if f.Error != "" {
				detail.WriteString("error: " + f.Error + "\n")
			}
			fmt.Fprintf(&b, `<tr title="%s"><td>%s</td><td>%s</td><td class="n">%.0f</td><td>%.0f (%s)</td><td class="n">%s</td><td class="n">%s</td><td>%s</td><td>%s</td><td>%s</td></tr>`,
				template.HTMLEscapeString(detail.String()), template.HTMLEscapeString(f.Name), v, f.Tried, f.Failed, template.HTMLEscapeString(StatusList(f.FailedByStatus)),
				msOrDash(f.DetectMS), msOrDash(f.RecoverMS), template.HTMLEscapeString(hitDip(f)), template.HTMLEscapeString(costChange(f)), template.HTMLEscapeString(alertsCell(f.Alerts)))
		}
		b.WriteString("</table>")
		for _, f := range l.Faults {
			for _, c := range f.failedChecks() {
				fmt.Fprintf(&b, `<div class="alert">%s: %s</div>`, template.HTMLEscapeString(f.Name), template.HTMLEscapeString(c))
			}
			for _, n := range f.Notes {
				fmt.Fprintf(&b, `<p class="note">%s: %s</p>`, template.HTMLEscapeString(f.Name), template.HTMLEscapeString(n))
			}
		}
	}
	return template.HTML(b.String())
}

// faultsJUnit adds one suite per leg run with faults or a ledger: a case
// per fault check and one for the ledger.
func faultsJUnit(root *junitSuites, s *RunSummary) {
	for _, l := range s.Legs {
		if len(l.Faults) == 0 && l.Ledger == nil {
			continue
		}
		suite := junitSuite{Name: fmt.Sprintf("faults.%s.run%d", legName(l), l.Run)}
		class := "hal9lab.faults." + l.Name
		if v := l.Ledger; v != nil {
			c := junitCase{Name: "ledger: nothing acknowledged lost", Classname: class, Output: v.Line()}
			if !v.OK() {
				c.Failure = &junitMessage{Message: "acknowledged writes lost", Body: v.Line() + "\n" + strings.Join(v.LostSample, "\n")}
			}
			suite.add(c)
		}
		for _, f := range l.Faults {
			if f.Error != "" {
				suite.add(junitCase{Name: f.Name + ": injected and healed", Classname: class, Failure: &junitMessage{Message: "fault error", Body: f.Error}})
			}
			for _, ch := range f.Checks {
				c := junitCase{Name: f.Name + ": " + ch.Name, Classname: class, Output: ch.Detail}
				if !ch.OK {
					c.Failure = &junitMessage{Message: "fault verdict failed", Body: ch.Detail}
				}
				suite.add(c)
			}
		}
		root.Suites = append(root.Suites, suite)
	}
}

// chartFault is a shaded band on the charts.
type chartFault struct {
	Name   string `json:"name"`
	Start  int64  `json:"start"`
	Healed int64  `json:"healed"`
	OK     bool   `json:"ok"`
}

func chartFaults(l Leg) []chartFault {
	var out []chartFault
	for _, f := range l.Faults {
		out = append(out, chartFault{Name: f.Target + " " + f.Kind, Start: f.Start, Healed: max(f.Healed, f.Start+500), OK: f.Passed()})
	}
	return out
}
