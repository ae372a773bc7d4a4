package report

import (
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/hal9-lab/hal9-lab/lab/baseline"
	"github.com/hal9-lab/hal9-lab/lab/profiles"
)

// Markdown renders report.md: the verdict table first, so it fits a CI job
// summary or a PR comment.
func Markdown(s *RunSummary) string {
	var b strings.Builder
	title := "HAL9 lab"
	if s.Profile != "" {
		title += " · " + s.Profile
	}
	fmt.Fprintf(&b, "# %s: %s\n\n", title, strings.ToUpper(s.Verdict()))
	fmt.Fprintf(&b, "`hal9-lab %s` · %s · %s", s.Command, s.StartedAt.UTC().Format("2006-01-02 15:04 UTC"), duration(s))
	if s.Commit != "" {
		fmt.Fprintf(&b, " · commit `%s`", short(s.Commit))
	}
	fmt.Fprintf(&b, " · %s, %d cores, %s", orDash(s.Machine.CPUModel), s.Machine.Cores, s.Machine.GoVersion)
	if s.Machine.Kernel != "" {
		fmt.Fprintf(&b, ", %s %s", s.Machine.OS, s.Machine.Kernel)
	}
	b.WriteString("\n\n")
	if s.Interrupted {
		b.WriteString("> **Interrupted** (Ctrl-C): the numbers below are what was measured before the stop.\n\n")
	}

	writeDepartures(&b, s)
	if s.Gate != nil {
		writeGate(&b, s.Gate)
	}
	writeHistory(&b, s.History)
	writeResults(&b, s)
	writeFaults(&b, s)
	writeCapacity(&b, s)
	writeServer(&b, s)
	writeReplicas(&b, s)
	writeContainers(&b, s)

	if len(s.Skipped) > 0 {
		b.WriteString("## Skipped legs\n\n")
		for _, sk := range s.Skipped {
			fmt.Fprintf(&b, "- **%s**: %s\n", sk.Leg, sk.Reason)
		}
		b.WriteString("\n")
	}
	if len(s.LabErrors) > 0 {
		b.WriteString("## Lab errors\n\n")
		for _, e := range s.LabErrors {
			fmt.Fprintf(&b, "- %s\n", e)
		}
		b.WriteString("\n")
	}
	writeFailedThresholds(&b, s)
	if s.PrometheusChecked > 0 || len(s.NoData) > 0 {
		fmt.Fprintf(&b, "## Dashboard and rule queries without data\n\n%d queries evaluated over the run, %d returned no data.\n\n", s.PrometheusChecked, len(s.NoData))
		if len(s.NoData) > 0 {
			b.WriteString("| source | name | expression | why |\n| --- | --- | --- | --- |\n")
			for _, n := range s.NoData {
				fmt.Fprintf(&b, "| %s | %s | `%s` | %s |\n", cell(n.Source), cell(n.Name), cell(n.Expr), cell(n.Reason))
			}
			b.WriteString("\n")
		}
	}
	writeProfiles(&b, s)
	b.WriteString("Files: `summary.json` (machine-readable), `report.html` (charts), `junit.xml`, `profiles/*.html` (flame graphs), `profiles/*.pb.gz` (`go tool pprof`).\n")
	return b.String()
}

func writeGate(b *strings.Builder, g *Gate) {
	c := g.Comparison.Counts()
	against := "the stored baseline"
	if g.Mode == "against" {
		against = "`" + g.Against + "` (interleaved runs on this machine)"
	} else if g.Baseline != "" {
		against = "`" + g.Baseline + "`"
	}
	fmt.Fprintf(b, "## Gate: %s\n\n%d runs against %s: %d regressed, %d improved, %d inconclusive, %d pass. Exit code %d.\n\n",
		strings.ToUpper(g.Verdict), g.Runs, against, c[baseline.Regressed], c[baseline.Improved], c[baseline.Inconclusive], c[baseline.Pass], g.ExitCode)
	if g.Verdict == string(baseline.Inconclusive) {
		b.WriteString("> **Inconclusive**: not one series could be judged (see each row's reason); this gate does not pass.\n")
	}
	for _, w := range g.Comparison.Warnings {
		fmt.Fprintf(b, "> %s\n", w)
	}
	if len(g.Comparison.Warnings) > 0 {
		b.WriteString("\n")
	}
	writeGateTable(b, g.Comparison)
}

func verdictIcon(v baseline.Verdict) string {
	switch v {
	case baseline.Regressed:
		return "❌ regressed"
	case baseline.Improved:
		return "✅ improved"
	case baseline.Inconclusive:
		return "❔ inconclusive"
	}
	return "✔️ pass"
}

func change(r baseline.Result) string {
	if r.Unit == "ratio" {
		return fmt.Sprintf("%+.1f pt", r.Delta*100)
	}
	if math.Abs(r.Change) >= 1e6 {
		return "from 0"
	}
	return fmt.Sprintf("%+.1f%%", r.Change*100)
}

func writeResults(b *strings.Builder, s *RunSummary) {
	if len(s.Legs) == 0 {
		b.WriteString("No leg ran.\n\n")
		return
	}
	if onlyCapacity(s) {
		return
	}
	b.WriteString("## Results\n\n| leg | run | scenario | thresholds | http_reqs | req/s (planned) | errors | p50 | p95 | p99 | iteration p99 | cache hit | cost / 1k req |\n")
	b.WriteString("| --- | ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	var total float64
	for _, l := range s.Legs {
		if l.Error != "" && len(l.Scenarios) == 0 {
			fmt.Fprintf(b, "| %s | %d | — | ❌ %s | | | | | | | | | |\n", legName(l), l.Run, cell(l.Error))
			continue
		}
		for _, sc := range l.Scenarios {
			m := sc.Metrics
			total += m.HTTPReqs
			th := "✔️ pass"
			if !sc.Passed {
				th = "❌ fail"
			}
			if len(sc.Thresholds) == 0 && sc.Passed {
				th = "✔️ (none)"
			}
			planned := ""
			if m.PlannedRPS > 0 {
				planned = fmt.Sprintf(" (%.1f)", m.PlannedRPS)
			}
			fmt.Fprintf(b, "| %s | %d | %s | %s | %.0f | %.1f%s | %s | %s | %s | %s | %s | %s | %s |\n",
				legName(l), l.Run, sc.Name, th, m.HTTPReqs, m.AchievedRPS, planned, pct(m.ErrorRate),
				ms(m.ReqP50), ms(m.ReqP95), ms(m.ReqP99), ms(m.IterP99), pct(sc.Server.CacheHitRate), usd(sc.Server.CostPer1K))
		}
	}
	fmt.Fprintf(b, "\nTotal http_reqs: %.0f.\n\n", total)
}

func writeServer(b *strings.Builder, s *RunSummary) {
	if len(s.Legs) == 0 || onlyCapacity(s) { // the capacity section has the search's server side
		return
	}
	seed := s.Seed
	if seed.SustainedRPS == 0 {
		seed = DefaultSeed()
	}
	fmt.Fprintf(b, "## Server side (from /metrics)\n\nMonthly LLM cost projected at %.0f req/s sustained, beside seed 000's $%.0f/month after caching.\n\n", seed.SustainedRPS, seed.MonthlyLLMCostUSD)
	b.WriteString("| leg | run | requests | cache hit (by tier) | LLM tokens in/out | LLM cost | monthly projection | pool waits | peak RSS | CPU s | shutdown |\n")
	b.WriteString("| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n")
	for _, l := range s.Legs {
		sv := l.Server
		fmt.Fprintf(b, "| %s | %d | %.0f | %s%s | %.0f / %.0f | %s | %s (%s) | %.0f (%.2f s) | %s | %.1f | %s |\n",
			legName(l), l.Run, sv.Requests, pct(sv.CacheHitRate), tiers(sv.CacheByTier), sv.TokensIn, sv.TokensOut, usd(sv.CostUSD),
			usd0(sv.MonthlyUSD), ratio(sv.MonthlyUSD, seed.MonthlyLLMCostUSD), sv.PoolWaits, sv.PoolWaitSeconds, mib(sv.PeakRSSBytes), sv.CPUSeconds, shutdown(sv))
	}
	b.WriteString("\n")
}

func writeFailedThresholds(b *strings.Builder, s *RunSummary) {
	var lines []string
	for _, l := range s.Legs {
		for _, sc := range l.Scenarios {
			for _, t := range sc.Thresholds {
				if !t.OK {
					lines = append(lines, fmt.Sprintf("- %s run %d, %s: `%s` on `%s` failed", legName(l), l.Run, sc.Name, t.Expr, t.Metric))
				}
			}
			if sc.Error != "" {
				lines = append(lines, fmt.Sprintf("- %s run %d, %s: %s", legName(l), l.Run, sc.Name, sc.Error))
			}
			for _, w := range sc.Warnings {
				lines = append(lines, fmt.Sprintf("- %s run %d, %s: warning: %s", legName(l), l.Run, sc.Name, w))
			}
		}
	}
	if len(lines) == 0 {
		return
	}
	b.WriteString("## Failed thresholds and warnings\n\n" + strings.Join(lines, "\n") + "\n\n")
}

func writeProfiles(b *strings.Builder, s *RunSummary) {
	if len(s.Profiles) == 0 {
		return
	}
	b.WriteString("## Profiles: top functions (flat share)\n\n")
	for _, p := range s.Profiles {
		fmt.Fprintf(b, "**%s**", p.Leg)
		if len(p.TopCPU) > 0 {
			b.WriteString(" · CPU: ")
			b.WriteString(joinTop(p.TopCPU, 5))
		}
		if len(p.TopAlloc) > 0 {
			b.WriteString(" · alloc bytes: ")
			b.WriteString(joinTop(p.TopAlloc, 5))
		}
		if len(p.GrewCPU) > 0 {
			g := p.GrewCPU[0]
			fmt.Fprintf(b, " · CPU share grew most vs baseline: `%s` %.1f%% → %.1f%%", shortFunc(g.Name), g.BaseShare*100, g.Share*100)
		}
		if len(p.GrewAlloc) > 0 {
			g := p.GrewAlloc[0]
			fmt.Fprintf(b, " · alloc share grew most: `%s` %.1f%% → %.1f%%", shortFunc(g.Name), g.BaseShare*100, g.Share*100)
		}
		if len(p.Flames) > 0 {
			links := make([]string, len(p.Flames))
			for i, f := range p.Flames {
				links[i] = fmt.Sprintf("[%s](profiles/%s)", flameLabel(f), f.File)
			}
			b.WriteString(" · flame graphs: " + strings.Join(links, ", "))
		}
		for _, n := range p.Notes {
			b.WriteString(" · " + n)
		}
		b.WriteString("\n\n")
	}
}

// flameLabel names a flame graph page in the report's links.
func flameLabel(f profiles.Flame) string {
	l := f.Type
	if f.Sample == profiles.FlameHeapSample {
		l += " (in use)"
	}
	if f.Against != "" {
		l += " vs " + f.Against
	}
	return l
}

func joinTop(fs []profiles.FuncShare, n int) string {
	var parts []string
	for i, f := range fs {
		if i == n {
			break
		}
		parts = append(parts, fmt.Sprintf("`%s` %.1f%%", shortFunc(f.Name), f.Share*100))
	}
	return strings.Join(parts, ", ")
}

// shortFunc drops the module path: github.com/a/b/pkg.F → pkg.F.
func shortFunc(name string) string {
	if i := strings.LastIndex(name, "/"); i >= 0 && i < len(name)-1 {
		return name[i+1:]
	}
	return name
}

func legName(l Leg) string {
	if l.Role != "" {
		return l.Name + " (" + l.Role + ")"
	}
	return l.Name
}

func tiers(m map[string]float64) string {
	if len(m) == 0 {
		return ""
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + " " + pct(m[k])
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

func shutdown(sv Server) string {
	if sv.ExitCode == nil {
		return "—"
	}
	if *sv.ExitCode == 0 {
		return fmt.Sprintf("exit 0 in %.1f s", sv.ShutdownMS/1000)
	}
	return fmt.Sprintf("❌ exit %d", *sv.ExitCode)
}

func duration(s *RunSummary) string {
	if s.EndedAt.IsZero() {
		return ""
	}
	return s.EndedAt.Sub(s.StartedAt).Round(1e9).String()
}

func num(v float64, unit string) string {
	switch unit {
	case "ms":
		return ms(v)
	case "ratio":
		return pct(v)
	case "USD":
		return usd(v)
	}
	return fmt.Sprintf("%.4g", v)
}

func ms(v float64) string {
	if v >= 100 {
		return fmt.Sprintf("%.0f ms", v)
	}
	return fmt.Sprintf("%.1f ms", v)
}
func pct(v float64) string  { return fmt.Sprintf("%.1f%%", v*100) }
func usd(v float64) string  { return fmt.Sprintf("$%.4f", v) }
func usd0(v float64) string { return fmt.Sprintf("$%.0f", v) }
func mib(v float64) string  { return fmt.Sprintf("%.0f MiB", v/(1<<20)) }
func ratio(a, b float64) string {
	if b == 0 {
		return "—"
	}
	return fmt.Sprintf("%.2f× seed", a/b)
}
func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}
func short(commit string) string {
	if len(commit) > 12 {
		return commit[:12]
	}
	return commit
}

// cell escapes a Markdown table cell.
func cell(s string) string {
	return strings.NewReplacer("|", "\\|", "\n", " ").Replace(s)
}
