package report

import (
	"bytes"
	"fmt"
	"html/template"
	"math"
	"regexp"
	"strconv"
	"strings"

	"github.com/hal9-lab/hal9-lab/lab/capacity"
)

// Capacity is a leg's knee search (a profile's capacity: block) and what
// explains it: the service demand per route, the USL fit (in Search), the
// fleet projection.
type Capacity struct {
	Scenario    string            `json:"scenario"`
	Search      *capacity.Result  `json:"search,omitempty"`
	Error       string            `json:"error,omitempty"`
	BcryptCost  int               `json:"bcrypt_cost"`      // the leg server's
	HitRate     float64           `json:"cache_hit_rate"`   // server side, over the search
	CostPer1K   float64           `json:"cost_per_1k_usd"`  // server side, over the search
	Requests    float64           `json:"requests"`         // server side, over the search
	Demand      *capacity.Demands `json:"demand,omitempty"` // service demand per route
	DemandError string            `json:"demand_error,omitempty"`
	Fleet       *capacity.Fleet   `json:"fleet,omitempty"`
}

// Seed lines of the hit-rate and cost charts.
const (
	SeedHitTarget = 0.90 // seed 002's target
	SeedHitAlert  = 0.30 // seed 000's alert threshold
)

// seedCostPer1K is what seed 000's bill implies per 1,000 requests.
func seedCostPer1K(seed Seed) float64 {
	if seed.SustainedRPS == 0 {
		seed = DefaultSeed()
	}
	return seed.MonthlyLLMCostUSD / (seed.SustainedRPS * 86400 * 30) * 1000
}

func capacityLegs(s *RunSummary) []Leg {
	var out []Leg
	for _, l := range s.Legs {
		if l.Capacity != nil {
			out = append(out, l)
		}
	}
	return out
}

func kneeText(c *Capacity) string {
	if c.Search == nil {
		return "— (" + c.Error + ")"
	}
	k := c.Search.Knee
	if !k.Found {
		return "none: the start rate failed (" + k.LimitedBy + ")"
	}
	return fmt.Sprintf("%.4g it/s = %.4g req/s", k.Rate, k.RequestRate)
}

func limitText(k capacity.Knee) string {
	switch k.LimitedBy {
	case capacity.LimitServer:
		return fmt.Sprintf("the server (SLO broken at %.4g it/s)", k.Bound)
	case capacity.LimitEngine:
		return fmt.Sprintf("the load generator (could not hold %.4g it/s): a lower bound", k.Bound)
	case capacity.LimitCeiling:
		return "the ceiling (no step failed)"
	}
	return k.LimitedBy
}

// productionBcryptCost is hal9 serve's default --bcrypt-cost.
const productionBcryptCost = 10

// Rating is the --capacity-rps a leg's knee search says one server of the
// run's machine class carries with the leg's backend.
type Rating struct {
	RPS     float64 // the value to set; 0: none (see Why)
	Knee    float64 // the knee's request rate, all of the leg's servers together
	Servers int     // servers that shared the load (replicas behind HAProxy)
	Why     string  // what the value is, or why there is none
}

// RatingOf rates one server from a leg's knee: the knee's request rate
// (requests per second, the server's count without probes) divided among
// the leg's servers and rounded down to three significant digits, since
// the true knee lies in [knee, knee × (1 + precision)).
func RatingOf(l Leg) Rating {
	c := l.Capacity
	switch {
	case c == nil:
		return Rating{Why: "no capacity search"}
	case c.Search == nil:
		return Rating{Why: "none: the search failed (" + c.Error + ")"}
	case !c.Search.Knee.Found:
		return Rating{Why: "none: even the start rate broke the SLO (" + limitText(c.Search.Knee) + ")"}
	}
	k := c.Search.Knee
	r := Rating{Knee: k.RequestRate, Servers: 1}
	if l.Replicas != nil && l.Replicas.Count > 1 {
		r.Servers = l.Replicas.Count
	}
	r.RPS = floorSignificant(k.RequestRate/float64(r.Servers), 3)
	r.Why = fmt.Sprintf("the knee, %.4g req/s", k.RequestRate)
	if r.Servers > 1 {
		r.Why += fmt.Sprintf(" of %d servers behind HAProxy, divided by %d", r.Servers, r.Servers)
	}
	r.Why += ", rounded down"
	switch k.LimitedBy {
	case capacity.LimitEngine:
		r.Why += "; a lower bound: the load generator could not go higher"
	case capacity.LimitCeiling:
		r.Why += "; a lower bound: no step failed up to the search's ceiling"
	}
	return r
}

// floorSignificant rounds v > 0 down to n significant digits.
func floorSignificant(v float64, n int) float64 {
	if v <= 0 {
		return 0
	}
	// Powers of ten are exact, and so multiplying by one or dividing by one
	// gives the float nearest the decimal (27.8, not 27.800000000000001).
	e := int(math.Floor(math.Log10(v))) - (n - 1)
	if e >= 0 {
		p := math.Pow10(e)
		return math.Floor(v/p+1e-9) * p
	}
	p := math.Pow10(-e)
	return math.Floor(v*p+1e-9) / p
}

// RatingFlag is the flag to set, e.g. "--capacity-rps 2340".
func RatingFlag(r Rating) string {
	if r.RPS == 0 {
		return "—"
	}
	return "--capacity-rps " + strconv.FormatFloat(r.RPS, 'f', -1, 64)
}

// ratingCaveats says what the ratings of the run hold for: the machine
// class, and what this run did not share with production.
func ratingCaveats(s *RunSummary, legs []Leg) string {
	machine := "this machine"
	if m := s.Machine; m.CPUModel != "" || m.Cores > 0 {
		machine = fmt.Sprintf("%s, %d cores", orDash(m.CPUModel), m.Cores)
	}
	out := fmt.Sprintf("It holds per server, on this machine class (%s), with the leg's backend and this workload's mix. It was measured with the load generator, and for PostgreSQL legs the local databases, on the same cores: a server on a machine of its own carries more.", machine)
	for _, l := range legs {
		if c := l.Capacity; c.BcryptCost > 0 && c.BcryptCost != productionBcryptCost {
			out += fmt.Sprintf(" The servers hashed passwords at bcrypt cost %d instead of production's %d: every login and registration costs 2^%d times more CPU in production, so a production server carries less",
				c.BcryptCost, productionBcryptCost, productionBcryptCost-c.BcryptCost)
			if c.Fleet != nil {
				out += " (the fleet projection below estimates how much)"
			}
			out += "."
			break
		}
	}
	if len(s.Departures) > 0 {
		out += " Read it with the run's other departures from production (at the top)."
	}
	return out + " Before relying on it, measure on the machine class the servers run on, with their settings (`make capacity` there)."
}

func fitText(f *capacity.USL) string {
	if f == nil {
		return "—"
	}
	s := fmt.Sprintf("σ=%.3g κ=%.3g λ=%.3g req/s R²=%.2f", f.Sigma, f.Kappa, f.Lambda, f.R2)
	switch {
	case f.PeakN > 0:
		s += fmt.Sprintf(", peak at N*=%.0f: %.4g req/s", f.PeakN, f.PeakX)
	case f.PeakX > 0:
		s += fmt.Sprintf(", no peak in reach (κ≈0): ceiling λ/σ = %.4g req/s", f.PeakX)
	}
	return s
}

func verdict(st capacity.Step) string {
	if st.Pass {
		return "✔️ pass"
	}
	return "❌ " + st.LimitedBy
}

func optPct(v *float64) string {
	if v == nil {
		return "—"
	}
	return pct(*v)
}

func optUSD(v *float64) string {
	if v == nil {
		return "—"
	}
	return usd(*v)
}

// writeCapacity is report.md's capacity section.
func writeCapacity(b *strings.Builder, s *RunSummary) {
	legs := capacityLegs(s)
	if len(legs) == 0 {
		return
	}
	b.WriteString("## Capacity: the knee\n\nThe highest arrival rate (open model, iterations/s; requests/s beside it) at which the SLO held, found by a geometric ramp then bisection; each step settles, then is judged.\n\n")
	b.WriteString("| leg | knee | p99 at the knee | limited by | SLO | USL fit (N = req/s × mean response time) | utilisation law: max req/s (server alone / this machine) | steps |\n| --- | --- | ---: | --- | --- | --- | --- | ---: |\n")
	for _, l := range legs {
		c := l.Capacity
		if c.Search == nil {
			fmt.Fprintf(b, "| %s | — | | ❌ %s | | | | |\n", legName(l), cell(c.Error))
			continue
		}
		k := c.Search.Knee
		pred := "—"
		if d := c.Demand; d != nil {
			pred = fmt.Sprintf("%.4g / %s", d.ServerMaxRPS, orNum(d.MachineMaxRPS))
		}
		fmt.Fprintf(b, "| %s | %s | %s | %s | `%s` | %s | %s | %d |\n", legName(l), kneeText(c), ms(k.P99), limitText(k),
			strings.Join(k.SLO, "`, `"), fitText(c.Search.Fit), pred, len(c.Search.Steps))
	}
	b.WriteString("\n### The value to set: `--capacity-rps`\n\nA server's rated capacity is its knee in requests per second, the highest request rate at which it held the SLO: `hal9 serve --capacity-rps N` (`HAL9_CAPACITY_RPS=N`) exports it as `hal9_capacity_requests_per_second`, and the capacity alerts (`HAL9LoadApproachingCapacity`, `HAL9LoadNearCapacity`) compare the fleet's request rate with the sum of its servers' ratings.\n\n| leg | set | from |\n| --- | --- | --- |\n")
	for _, l := range legs {
		r := RatingOf(l)
		set := "—"
		if r.RPS > 0 {
			set = "`" + RatingFlag(r) + "`"
		}
		fmt.Fprintf(b, "| %s | %s | %s |\n", legName(l), set, cell(r.Why))
	}
	b.WriteString("\n" + ratingCaveats(s, legs) + "\n\n")
	seed := s.Seed
	for _, l := range legs {
		c := l.Capacity
		if c.Search == nil {
			continue
		}
		fmt.Fprintf(b, "### %s: latency against throughput\n\n", legName(l))
		b.WriteString("| req/s achieved | it/s planned (achieved) | p50 | p95 | p99 | errors | dropped | N | cache hit | cost / 1k req | verdict |\n| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n")
		for _, st := range c.Search.Curve() {
			fmt.Fprintf(b, "| %.1f | %.1f (%.1f) | %s | %s | %s | %s | %.0f | %.1f | %s | %s | %s |\n", st.RequestRate, st.PlannedRate, st.AchievedRate,
				ms(st.P50), ms(st.P95), ms(st.P99), pct(st.ErrorRate), st.Dropped, st.Concurrency, optPct(st.CacheHitRate), optUSD(st.CostPer1K), verdict(st))
		}
		fmt.Fprintf(b, "\nOver the search the server's LLM cache hit rate was %s (seed 002's target 90 %%, seed 000 alerts under 30 %%) and the LLM cost %s per 1,000 requests (seed 000's $%.0f/month at %.0f req/s is %s).\n\n",
			pct(c.HitRate), usd(c.CostPer1K), orSeed(seed).MonthlyLLMCostUSD, orSeed(seed).SustainedRPS, usd(seedCostPer1K(seed)))
		for _, n := range c.Search.Notes {
			fmt.Fprintf(b, "- note: %s\n", n)
		}
		if len(c.Search.Notes) > 0 {
			b.WriteString("\n")
		}
		writeDemand(b, l)
	}
}

func orSeed(s Seed) Seed {
	if s.SustainedRPS == 0 {
		return DefaultSeed()
	}
	return s
}

func orNum(v float64) string {
	if v == 0 {
		return "—"
	}
	return fmt.Sprintf("%.4g", v)
}

func writeDemand(b *strings.Builder, l Leg) {
	c := l.Capacity
	if c.Demand == nil {
		if c.DemandError != "" {
			fmt.Fprintf(b, "Service demand: not computed: %s\n\n", c.DemandError)
		}
		return
	}
	d := c.Demand
	fmt.Fprintf(b, "**Why there: service demand per route** (server CPU per request, from CPU profile samples labelled by route and layer, divided by each route's requests; %.0f requests, %.1f CPU s over the server's life):\n\n", d.Requests, d.CPUSeconds)
	b.WriteString("| route | requests | share | CPU ms / request | of which bcrypt | ms per mix request |\n| --- | ---: | ---: | ---: | ---: | ---: |\n")
	for _, r := range d.Routes {
		fmt.Fprintf(b, "| %s | %.0f | %s | %.3f | %.3f | %.3f |\n", r.Name, r.Requests, pct(r.Share), r.DemandMS, r.BcryptS/r.Requests*1000, r.ContributionMS)
	}
	fmt.Fprintf(b, "| (unlabelled: runtime, GC, connections, scrapes) | | | | | %.3f |\n| **mix** | %.0f | 100%% | | %.3f | **%.3f** |\n\n", d.OverheadMS, d.Requests, d.BcryptMS, d.MixDemandMS)
	fmt.Fprintf(b, "The bottleneck is **%s**: %s of the mix's %.3f ms of server CPU per request. By the utilisation law (U = X·D ≤ %d cores) the server alone could carry at most **%.4g req/s** of this mix",
		d.Bottleneck, pct(d.BottleShare), d.MixDemandMS, d.Cores, d.ServerMaxRPS)
	if d.MachineMaxRPS > 0 {
		fmt.Fprintf(b, "; with the load generator (%.3f ms/request) and the local databases (%.3f ms/request) on the same cores, **%.4g req/s** on this machine", d.LoadGenMS, d.BackendMS, d.MachineMaxRPS)
	}
	if c.Search != nil && c.Search.Knee.Found {
		fmt.Fprintf(b, ", beside the measured knee of **%.4g req/s**", c.Search.Knee.RequestRate)
	}
	b.WriteString(". The gap is what the SLO leaves unused (queueing grows long before 100 % CPU) and the machine's other work.\n\n")
	for _, n := range d.Notes {
		fmt.Fprintf(b, "- note: %s\n", n)
	}
	if f := c.Fleet; f != nil {
		fmt.Fprintf(b, "**Projected to the fleet** (a model, not a promise): at production bcrypt cost %d the mix needs %.3f ms of CPU per request (measured %.3f at cost %d), so a pod of %g CPU at %.0f %% carries %.4g req/s: **%d pods for %.0f req/s sustained, %d for %.0f at peak** (%d at 100 %% CPU), beside seed 000's %d pods. LLM at the measured %s hit rate: **%s/month** at %.0f req/s, beside seed 000's $%.0f.\n\nAssumptions:\n\n",
			f.BcryptCostProduction, f.ProductionDemandMS, f.MixDemandMS, f.BcryptCostMeasured, f.PodCPU, f.TargetUtilisation*100, f.PerPodRPS,
			f.PodsSustained, f.SustainedRPS, f.PodsPeak, f.PeakRPS, f.PodsSaturated, f.SeedPods, pct(f.HitRate), usd0(f.MonthlyLLMUSD), f.SustainedRPS, f.SeedMonthlyLLMUSD)
		for _, a := range f.Assumptions {
			fmt.Fprintf(b, "- %s\n", a)
		}
		b.WriteString("\n")
	}
}

var capacityTmpl = template.Must(template.New("capacity").Funcs(template.FuncMap{
	"ms": ms, "pct": pct, "usd": usd, "usd0": usd0, "legName": legName, "knee": kneeText, "limit": limitText, "fit": fitText,
	"optPct": optPct, "optUSD": optUSD, "join": strings.Join, "mul": func(a, b float64) float64 { return a * b },
	"div": func(a, b float64) float64 {
		if b == 0 {
			return 0
		}
		return a / b
	},
	"num": func(v float64) string { return fmt.Sprintf("%.4g", v) }, "f3": func(v float64) string { return fmt.Sprintf("%.3f", v) },
	"rating": RatingOf, "ratingFlag": RatingFlag,
}).Parse(`<section id="capacity">
  <h2>Capacity: the knee</h2>
  <p class="note">The highest arrival rate (open model) at which the SLO held: a geometric ramp, then bisection; each step settles, then is judged. Curves: latency percentiles against the achieved request rate, the SLO as a dashed line, the knee as a vertical one; the cache hit rate and LLM cost per 1,000 requests against the seeds' lines.</p>
  <table>
    <tr><th>leg</th><th>knee</th><th class="n">p99 at the knee</th><th>limited by</th><th>SLO</th><th>USL fit</th><th class="n">max req/s: server alone / this machine</th><th class="n">steps</th></tr>
    {{range .Legs}}{{$c := .Capacity}}<tr><td><b>{{legName .}}</b></td>
    {{if $c.Search}}<td>{{knee $c}}</td><td class="n">{{ms $c.Search.Knee.P99}}</td><td>{{limit $c.Search.Knee}}</td><td><code>{{join $c.Search.Knee.SLO ", "}}</code></td><td>{{fit $c.Search.Fit}}</td>
      <td class="n">{{if $c.Demand}}{{num $c.Demand.ServerMaxRPS}} / {{if $c.Demand.MachineMaxRPS}}{{num $c.Demand.MachineMaxRPS}}{{else}}—{{end}}{{else}}—{{end}}</td><td class="n">{{len $c.Search.Steps}}</td>
    {{else}}<td colspan="7"><span class="badge b-fail">error</span> {{$c.Error}}</td>{{end}}</tr>{{end}}
  </table>
  <h3 id="capacity-rps">The value to set: <code>--capacity-rps</code></h3>
  <p class="note">A server's rated capacity is its knee in requests per second, the highest request rate at which it held the SLO: <code>hal9 serve --capacity-rps N</code> (<code>HAL9_CAPACITY_RPS=N</code>) exports it as <code>hal9_capacity_requests_per_second</code>, and the capacity alerts (HAL9LoadApproachingCapacity, HAL9LoadNearCapacity) compare the fleet's request rate with the sum of its servers' ratings.</p>
  <table><tr><th>leg</th><th>set</th><th>from</th></tr>
  {{range .Legs}}{{$r := rating .}}<tr><td><b>{{legName .}}</b></td><td>{{if $r.RPS}}<code>{{ratingFlag $r}}</code>{{else}}—{{end}}</td><td>{{$r.Why}}</td></tr>{{end}}
  </table>
  <p class="note">{{.Caveats}}</p>
  <div class="grid" id="capacity-grid" style="grid-template-columns:repeat(auto-fill, minmax(340px, 520px))"></div>
  {{range .Legs}}{{$c := .Capacity}}{{if $c.Demand}}{{$d := $c.Demand}}
  <h3>{{legName .}}: service demand per route</h3>
  <p class="note">Server CPU per request from CPU samples labelled by route and layer. Bottleneck: <b>{{$d.Bottleneck}}</b> ({{pct $d.BottleShare}} of {{f3 $d.MixDemandMS}} ms per mix request); utilisation law: at most <b>{{num $d.ServerMaxRPS}} req/s</b> with the server alone on {{$d.Cores}} cores{{if $d.MachineMaxRPS}}, <b>{{num $d.MachineMaxRPS}} req/s</b> on this machine with the load generator ({{f3 $d.LoadGenMS}} ms) and local databases ({{f3 $d.BackendMS}} ms){{end}}{{if $c.Search}}{{if $c.Search.Knee.Found}}; measured knee {{num $c.Search.Knee.RequestRate}} req/s{{end}}{{end}}.</p>
  <table><tr><th>route</th><th class="n">requests</th><th class="n">share</th><th class="n">CPU ms / request</th><th class="n">of which bcrypt</th><th class="n">ms per mix request</th></tr>
  {{range $d.Routes}}<tr><td>{{.Name}}</td><td class="n">{{printf "%.0f" .Requests}}</td><td class="n">{{pct .Share}}</td><td class="n">{{f3 .DemandMS}}</td><td class="n">{{f3 (mul (div .BcryptS .Requests) 1000)}}</td><td class="n">{{f3 .ContributionMS}}</td></tr>{{end}}
  <tr><td>(unlabelled)</td><td></td><td></td><td></td><td></td><td class="n">{{f3 $d.OverheadMS}}</td></tr></table>
  {{with $c.Fleet}}<p><b>Projected to the fleet</b> (a model, not a promise): at bcrypt cost {{.BcryptCostProduction}}, {{f3 .ProductionDemandMS}} ms of CPU per request; a pod of {{.PodCPU}} CPU at {{printf "%.0f" (mul .TargetUtilisation 100)}} % carries {{num .PerPodRPS}} req/s: <b>{{.PodsSustained}} pods for {{printf "%.0f" .SustainedRPS}} req/s, {{.PodsPeak}} at the {{printf "%.0f" .PeakRPS}} req/s peak</b> ({{.PodsSaturated}} at 100 % CPU), beside seed 000's {{.SeedPods}}. LLM at the measured {{pct .HitRate}} hit rate: <b>{{usd0 .MonthlyLLMUSD}}/month</b>, beside seed 000's ${{printf "%.0f" .SeedMonthlyLLMUSD}}.</p>
  <ul class="note">{{range .Assumptions}}<li>{{.}}</li>{{end}}</ul>{{end}}
  {{end}}{{end}}
</section>`))

// capacityHTML is report.html's capacity section (the charts are drawn
// into #capacity-grid by charts.js).
func capacityHTML(s *RunSummary) (template.HTML, error) {
	legs := capacityLegs(s)
	if len(legs) == 0 {
		return "", nil
	}
	var buf bytes.Buffer
	if err := capacityTmpl.Execute(&buf, map[string]any{"Legs": legs, "Caveats": ratingCaveats(s, legs)}); err != nil {
		return "", fmt.Errorf("render the capacity section: %w", err)
	}
	return template.HTML(buf.String()), nil
}

// chartCapacity is one leg's capacity curves for charts.js.
type chartCapacity struct {
	Leg        string      `json:"leg"`
	SLOms      float64     `json:"slo_ms,omitempty"` // the SLO on http_req_duration, when it has one
	SLOLabel   string      `json:"slo_label,omitempty"`
	KneeRPS    float64     `json:"knee_rps,omitempty"`
	Steps      []chartStep `json:"steps"`
	SeedCost1K float64     `json:"seed_cost_per_1k"`
	HitTarget  float64     `json:"hit_target"`
	HitAlert   float64     `json:"hit_alert"`
}

type chartStep struct {
	X         float64  `json:"x"` // achieved req/s
	P50       float64  `json:"p50"`
	P95       float64  `json:"p95"`
	P99       float64  `json:"p99"`
	Pass      bool     `json:"pass"`
	Hit       *float64 `json:"hit,omitempty"`
	CostPer1K *float64 `json:"cost_per_1k,omitempty"`
}

var durationSLO = regexp.MustCompile(`^http_req_duration:(p\([0-9.]+\)|avg|med)<=?([0-9.]+)$`)

func capacityCharts(s *RunSummary) []chartCapacity {
	var out []chartCapacity
	for _, l := range capacityLegs(s) {
		c := l.Capacity
		if c.Search == nil {
			continue
		}
		cc := chartCapacity{Leg: legName(l), SeedCost1K: seedCostPer1K(s.Seed), HitTarget: SeedHitTarget * 100, HitAlert: SeedHitAlert * 100}
		for _, slo := range c.Search.Knee.SLO {
			if m := durationSLO.FindStringSubmatch(strings.ReplaceAll(slo, " ", "")); m != nil {
				cc.SLOms, _ = strconv.ParseFloat(m[2], 64)
				cc.SLOLabel = "SLO " + m[1] + " < " + m[2] + " ms"
			}
		}
		if c.Search.Knee.Found {
			cc.KneeRPS = c.Search.Knee.RequestRate
		}
		for _, st := range c.Search.Curve() {
			cs := chartStep{X: st.RequestRate, P50: st.P50, P95: st.P95, P99: st.P99, Pass: st.Pass, CostPer1K: st.CostPer1K}
			if st.CacheHitRate != nil {
				h := *st.CacheHitRate * 100
				cs.Hit = &h
			}
			cc.Steps = append(cc.Steps, cs)
		}
		out = append(out, cc)
	}
	return out
}

// capacityJUnit: one case per leg, failing when the search found no knee
// or could not run.
func capacityJUnit(root *junitSuites, s *RunSummary) {
	legs := capacityLegs(s)
	if len(legs) == 0 {
		return
	}
	suite := junitSuite{Name: "capacity"}
	for _, l := range legs {
		c := l.Capacity
		tc := junitCase{Name: "knee of " + legName(l), Classname: "hal9lab.capacity." + l.Name}
		switch {
		case c.Search == nil:
			tc.Failure = &junitMessage{Message: "capacity search failed", Body: c.Error}
		case !c.Search.Knee.Found:
			tc.Failure = &junitMessage{Message: "no knee", Body: "even the start rate failed: " + limitText(c.Search.Knee)}
		default:
			k := c.Search.Knee
			out := fmt.Sprintf("knee %s, p99 %s, limited by %s; SLO %s; USL %s; rated capacity per server: %s (%s)", kneeText(c), ms(k.P99), limitText(k),
				strings.Join(k.SLO, ", "), fitText(c.Search.Fit), RatingFlag(RatingOf(l)), RatingOf(l).Why)
			if d := c.Demand; d != nil {
				out += fmt.Sprintf("; bottleneck %s (%s of %.3f ms per request), utilisation-law max %.4g req/s", d.Bottleneck, pct(d.BottleShare), d.MixDemandMS, d.ServerMaxRPS)
			}
			if f := c.Fleet; f != nil {
				out += fmt.Sprintf("; fleet: %d pods sustained, %d at peak (seed 000: %d); LLM %s/month. Assumptions: %s", f.PodsSustained, f.PodsPeak, f.SeedPods,
					usd0(f.MonthlyLLMUSD), strings.Join(f.Assumptions, "; "))
			}
			tc.Output = out
		}
		suite.add(tc)
	}
	root.Suites = append(root.Suites, suite)
}

// onlyCapacity: every leg ran a capacity search and no scenario.
func onlyCapacity(s *RunSummary) bool {
	for _, l := range s.Legs {
		if len(l.Scenarios) > 0 || l.Capacity == nil {
			return false
		}
	}
	return len(s.Legs) > 0
}
