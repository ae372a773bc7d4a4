package faults

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"time"

	"github.com/hal9-lab/hal9-lab/lab/report"
)

// AlertSpan is one alert firing from From to To (Prometheus' ALERTS).
type AlertSpan struct {
	Name     string
	From, To time.Time
}

// Input is everything a leg's faults are judged on.
type Input struct {
	Records  []Record
	Requests []Req
	Health   []Health
	Server   []report.ServerPoint // per-second scrapes (cache hit, cost)
	// Alerts is nil without Prometheus; AlertFor holds each alert's for:.
	Alerts   []AlertSpan
	AlertFor map[string]time.Duration
	End      time.Time // the end of the load
}

// Grace is how long after a fault is healed its requests still count as
// its own (tried, failed, "only while down").
const Grace = 5 * time.Second

// recoverWithin is the bound for PostgreSQL: the error rate back
// under 1 % within 5 s of its return.
const recoverWithin = 5 * time.Second

// raceWindow: a request sent this shortly before a SIGTERM may still be
// in the kernel when the server closes the idle keep-alive connection it
// was written to (http.Server.Shutdown closes idle connections at once);
// it never reached a handler, so it is not "in flight".
const raceWindow = 20 * time.Millisecond

// alertLag is what an alert needs beyond its for: before it can fire in
// the lab (the probe, a 1 s scrape, a 1 s evaluation, rate windows).
const alertLag = 10 * time.Second

// Symptom alerts follow any fault that fails or slows requests: they
// fire as a consequence, never unrelated. Load alerts follow the load's
// spending or its rate against --capacity-rps, not the faults.
var (
	SymptomAlerts = []string{"HAL9HighErrorRate", "HAL9ErrorBudgetBurn", "HAL9ErrorBudgetBurnSlow",
		"HAL9HighLatencyP99", "HAL9LatencyBudgetBurn", "HAL9LatencyBudgetBurnSlow"}
	LoadAlerts = []string{"HAL9LLMHourlyBudgetWarning", "HAL9LLMHourlyBudgetExceeded",
		"HAL9LLMDailyBudgetWarning", "HAL9LLMDailyBudgetExceeded", "HAL9LoadApproachingCapacity", "HAL9LoadNearCapacity"}
)

// MeantAlert is the alert a fault is meant to fire ("" for none): the
// table of docs/operators.md. A fault's alert: key overrides it.
func MeantAlert(s Spec) string {
	if s.Alert != nil {
		if *s.Alert == "none" {
			return ""
		}
		return *s.Alert
	}
	switch s.Target {
	case Redis:
		return "HAL9RedisUnavailable"
	case Postgres:
		if s.Kind == "restart" {
			return ""
		}
		return "HAL9StoreUnavailable"
	case Network:
		switch s.Kind {
		case "reset", "blackhole":
			if s.Backend == Redis {
				return "HAL9RedisUnavailable"
			}
			return "HAL9StoreUnavailable"
		}
		// Slowness pages only through the latency budget, whose 1 h window
		// needs tens of minutes of it (docs/operators.md): none meant.
		return ""
	case LLM:
		if s.Kind == "latency-scale" {
			return ""
		}
		return "HAL9CircuitBreakersOpen"
	case Server:
		if s.Kind == "port-taken" || s.Duration == 0 {
			return "" // restarted at once: too short for any alert
		}
		return "HAL9Down"
	}
	return ""
}

// Analyze turns the records of a leg's timeline into report results.
func Analyze(in Input) []report.FaultResult {
	recs := append([]Record(nil), in.Records...)
	sortRecords(recs)
	out := make([]report.FaultResult, 0, len(recs))
	for i, r := range recs {
		// A fault's numbers end where the next fault begins (even when that
		// one began before this one was healed: a timeline too tight).
		limit := in.End
		if i+1 < len(recs) && !recs[i+1].Injected.IsZero() && recs[i+1].Injected.Before(limit) && recs[i+1].Injected.After(r.Injected) {
			limit = recs[i+1].Injected
		}
		out = append(out, analyzeOne(in, r, limit, i == 0, recs))
	}
	return out
}

func analyzeOne(in Input, r Record, limit time.Time, first bool, all []Record) report.FaultResult {
	s := r.Spec
	f := report.FaultResult{Name: s.Name(), Target: s.Target, Kind: s.Kind, Replica: s.Replica, Options: s.Options(),
		Start: r.Injected.UnixMilli(), Healed: r.Healed.UnixMilli(), CacheHitBefore: -1, CacheHitDuring: -1, Notes: r.Notes}
	if r.Err != nil {
		f.Error = r.Err.Error()
	}
	if r.Injected.IsZero() {
		f.Start, f.Healed = 0, 0
		return f
	}
	// The fault's requests: from its injection to 5 s after its heal, but
	// never into the next fault's.
	winEnd := r.Healed.Add(Grace)
	if limit.Before(winEnd) {
		winEnd = limit
	}
	st := stats{byStatus: map[string]float64{}}
	var firstFail *Req
	for i := range in.Requests {
		q := in.Requests[i]
		// A request still running when the next fault began may be that
		// fault's: it is not counted here.
		if q.Start.Before(r.Injected) || !q.Start.Before(winEnd) || (winEnd.Equal(limit) && q.End.After(limit)) {
			if q.Start.Before(r.Injected) && q.End.After(r.Injected) && q.Failed() {
				// In flight at the injection: being served. One sent in the
				// last raceWindow may not have reached the server yet and race
				// the close of an idle keep-alive connection: noted apart.
				if r.Injected.Sub(q.Start) >= raceWindow {
					st.inflightFailed++
					st.inflightDetail = append(st.inflightDetail, fmt.Sprintf("%s sent %s before", statusName(q.Status), r.Injected.Sub(q.Start).Round(time.Millisecond)))
				} else {
					st.raced++
				}
			}
			continue
		}
		st.tried++
		if !q.Failed() {
			continue
		}
		st.failed++
		st.byStatus[strconv.Itoa(q.Status)]++
		switch {
		case q.Status == 0:
			st.noResponse++
		case q.Status == 503 && !q.RetryAfter:
			st.no503RetryAfter++
		case q.Status != 503:
			st.other5xx++
		}
		if q.Start.After(r.Healed.Add(recoverWithin)) {
			st.lateFailures++
		}
		if firstFail == nil || q.End.Before(firstFail.End) {
			firstFail = &in.Requests[i]
		}
	}
	f.Tried, f.Failed = st.tried, st.failed
	if len(st.byStatus) > 0 {
		f.FailedByStatus = st.byStatus
	}
	// Detection: the first failed request, or the server's own view.
	if firstFail != nil {
		d := ms(firstFail.End.Sub(r.Injected))
		f.DetectMS, f.DetectedBy = &d, fmt.Sprintf("first failed request (%s)", statusName(firstFail.Status))
	}
	for _, h := range in.Health {
		if h.T.Before(r.Injected) || h.T.After(winEnd) {
			continue
		}
		why := ""
		switch {
		case h.Ready != "ready":
			why = "/readyz " + h.Ready
		case h.StoreUp == 0:
			why = "hal9_backend_up{backend=\"store\"} 0"
		case h.RedisUp == 0:
			why = "hal9_backend_up{backend=\"redis\"} 0"
		case h.BreakersOpen > 0:
			why = "a circuit breaker open"
		}
		if why != "" {
			if d := ms(h.T.Sub(r.Injected)); f.DetectMS == nil || d < *f.DetectMS {
				f.DetectMS, f.DetectedBy = &d, why
			}
			break
		}
	}
	f.RecoverMS = recovery(in.Requests, r.Healed, limit)
	if !limit.After(r.Healed) {
		f.RecoverMS = nil
		f.Notes = append(f.Notes, fmt.Sprintf("the next fault began %s before this one was healed: space the timeline wider", r.Healed.Sub(limit).Round(time.Millisecond)))
	}
	f.CacheHitBefore = meanHit(in.Server, r.Injected.Add(-15*time.Second), r.Injected)
	f.CacheHitDuring = meanHit(in.Server, r.Injected, r.Healed.Add(time.Second))
	f.CostPer1KBefore = costPer1K(in.Server, in.Requests, r.Injected.Add(-15*time.Second), r.Injected)
	f.CostPer1KDuring = costPer1K(in.Server, in.Requests, r.Injected, r.Healed.Add(time.Second))
	if f.CostPer1KBefore > 0 {
		f.CostChange = f.CostPer1KDuring/f.CostPer1KBefore - 1
	}
	f.Checks = checks(in, r, st, f, limit)
	if in.Alerts != nil {
		f.Alerts, f.Checks, f.Notes = alertChecks(in, r, first, all, f.Checks, f.Notes)
	}
	return f
}

type stats struct {
	tried, failed                         float64
	byStatus                              map[string]float64
	noResponse, no503RetryAfter, other5xx float64
	lateFailures                          float64 // started more than 5 s after the heal
	inflightFailed                        float64 // started before the injection, failed after it
	inflightDetail                        []string
	raced                                 float64 // sent within raceWindow of the injection, failed
}

func statusName(code int) string {
	if code == 0 {
		return "no response"
	}
	return strconv.Itoa(code)
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// recovery is the time from healed until the error rate stays under 1 %:
// the end of the last one-second bucket in [healed, limit) with 1 % or
// more of its requests failed; 0 when there is none; nil when no good
// second with requests follows the last bad one (not recovered in time).
func recovery(reqs []Req, healed, limit time.Time) *float64 {
	if !limit.After(healed) {
		limit = healed.Add(time.Second)
	}
	n := int(math.Ceil(limit.Sub(healed).Seconds()))
	total, failed := make([]float64, n), make([]float64, n)
	for _, q := range reqs {
		// Requests still running when the limit (the next fault) came may
		// have failed because of it.
		if q.Start.Before(healed) || !q.End.Before(limit) {
			continue
		}
		i := int(q.Start.Sub(healed) / time.Second)
		total[i]++
		if q.Failed() {
			failed[i]++
		}
	}
	last := -1
	for i := range total {
		if total[i] > 0 && failed[i]/total[i] >= 0.01 {
			last = i
		}
	}
	good := false
	for i := last + 1; i < n; i++ {
		if total[i] > 0 {
			good = true
		}
	}
	if last >= 0 && !good {
		return nil
	}
	d := float64(last+1) * 1000
	return &d
}

func meanHit(pts []report.ServerPoint, from, to time.Time) float64 {
	sum, n := 0.0, 0
	for _, p := range pts {
		t := time.UnixMilli(p.T)
		if t.Before(from) || !t.Before(to) || p.CacheHitRate < 0 {
			continue
		}
		sum += p.CacheHitRate
		n++
	}
	if n == 0 {
		return -1
	}
	return sum / float64(n)
}

// costPer1K is the LLM cost per 1,000 requests over [from, to): the
// growth of the scrapes' cumulative cost (a server restart resets it: a
// drop counts as no growth) over the requests started then.
func costPer1K(pts []report.ServerPoint, reqs []Req, from, to time.Time) float64 {
	var cost float64
	for i := 1; i < len(pts); i++ {
		t := time.UnixMilli(pts[i].T)
		if t.Before(from) || !t.Before(to) {
			continue
		}
		if d := pts[i].CostUSD - pts[i-1].CostUSD; d > 0 {
			cost += d
		}
	}
	n := 0
	for _, q := range reqs {
		if !q.Start.Before(from) && q.Start.Before(to) {
			n++
		}
	}
	if n == 0 {
		return 0
	}
	return cost / float64(n) * 1000
}

func check(name string, ok bool, detail string, args ...any) report.FaultCheck {
	return report.FaultCheck{Name: name, OK: ok, Detail: fmt.Sprintf(detail, args...)}
}

// checks are the verdicts the lab asserts for the fault's kind.
func checks(in Input, r Record, st stats, f report.FaultResult, limit time.Time) []report.FaultCheck {
	s := r.Spec
	var out []report.FaultCheck
	noFiveXX := func(what string) {
		n := st.noResponse + st.no503RetryAfter + st.other5xx + st.byStatus["503"]
		out = append(out, check("no 5xx "+what, n == 0, "%.0f of %.0f requests failed (%s)", n, st.tried, report.StatusList(st.byStatus)))
	}
	only503 := func() {
		bad := st.noResponse + st.no503RetryAfter + st.other5xx
		out = append(out, check("every failure a 503 with Retry-After", bad == 0,
			"%.0f failed: %.0f without a response, %.0f 503 without Retry-After, %.0f other 5xx", st.failed, st.noResponse, st.no503RetryAfter, st.other5xx))
	}
	recovered := func(bound time.Duration) {
		switch {
		case f.RecoverMS == nil:
			out = append(out, check("recovered", false, "the error rate was still 1 %% or more when the next fault or the load's end came"))
		case bound > 0:
			out = append(out, check(fmt.Sprintf("recovered within %s of the heal", bound), *f.RecoverMS <= ms(bound), "error rate under 1 %% %.0f ms after the heal", *f.RecoverMS))
		default:
			out = append(out, check("recovered", true, "error rate under 1 %% %.0f ms after the heal", *f.RecoverMS))
		}
	}
	switch {
	case s.Target == Redis || s.Target == Network && s.Backend == Redis:
		noFiveXX("while Redis was away (the process tier answers)")
	case s.Target == Postgres:
		only503()
		out = append(out, check("503s only while PostgreSQL was down", st.lateFailures == 0,
			"%.0f requests failed after the first 5 s of its return", st.lateFailures))
		recovered(recoverWithin)
	case s.Target == Network:
		only503()
		recovered(0)
	case s.Target == LLM:
		only503()
		if s.Kind == "rate-limit" {
			opened, shed, closedAfter := breakerStory(in.Health, r.Injected, r.Healed, limit)
			out = append(out,
				check("the breaker opened", opened, "hal9_circuit_breaker_state reached 2 (open) during the 429 storm: %v", opened),
				check("load was shed", shed > 0, "%.0f LLM calls refused by open breakers instead of sent to the provider", shed),
				check("half-open probes closed the breakers", closedAfter >= 0, "all breakers closed %s after the storm ended", durOrNever(closedAfter)))
		}
		recovered(0)
	case s.Target == Server && s.Kind == "sigterm":
		code := -1
		if r.ExitCode != nil {
			code = *r.ExitCode
		}
		out = append(out,
			check("exit 0 after SIGTERM", code == 0, "exit code %d", code),
			check("no in-flight request failed", st.inflightFailed == 0, "%.0f requests in flight at SIGTERM failed %v; %.0f sent within %s of it raced the close of an idle connection",
				st.inflightFailed, st.inflightDetail, st.raced, raceWindow))
		recovered(0)
	case s.Target == Server && s.Kind == "sigkill":
		recovered(0)
	}
	return out
}

// breakerStory reads the monitor: did a breaker open during [from, to],
// how many calls did open breakers refuse, and how long after to were all
// breakers closed again (-1: not before limit).
func breakerStory(hs []Health, from, to, limit time.Time) (opened bool, shed float64, closedAfter time.Duration) {
	closedAfter = -1
	var first, last *Health
	for i := range hs {
		h := &hs[i]
		if h.T.Before(from) || h.T.After(limit) {
			continue
		}
		if !h.T.After(to) && h.BreakersOpen > 0 {
			opened = true
		}
		if first == nil {
			first = h
		}
		last = h
		if h.T.After(to) && h.BreakersOpen == 0 && h.Ready != "down" && closedAfter < 0 {
			closedAfter = h.T.Sub(to)
		}
		if h.T.After(to) && h.BreakersOpen > 0 {
			closedAfter = -1 // opened again: wait for the last closing
		}
	}
	if first != nil && last != nil && last.CircuitOpenCalls >= first.CircuitOpenCalls {
		shed = last.CircuitOpenCalls - first.CircuitOpenCalls
	}
	return opened, shed, closedAfter
}

func durOrNever(d time.Duration) string {
	if d < 0 {
		return "never (within the run)"
	}
	return d.Round(100 * time.Millisecond).String()
}

// alertChecks: the meant alert fired during the fault (when the fault
// lasted long enough for its for:), and no alert fired that nothing
// explains: not meant by a fault whose influence covers it, not a
// symptom of a fault that failed or slowed requests, not a load alert.
func alertChecks(in Input, r Record, first bool, all []Record, cks []report.FaultCheck, notes []string) (*report.FaultAlerts, []report.FaultCheck, []string) {
	a := &report.FaultAlerts{}
	s := r.Spec
	meant := MeantAlert(s)
	if meant != "" {
		a.Meant = []string{meant}
	}
	windowEnd := r.Healed.Add(30 * time.Second)
	fired := map[string]bool{}
	for _, sp := range in.Alerts {
		if sp.From.Before(windowEnd) && sp.To.After(r.Injected) {
			fired[sp.Name] = true
		}
	}
	for n := range fired {
		a.Fired = append(a.Fired, n)
	}
	sort.Strings(a.Fired)
	if meant != "" {
		need := in.AlertFor[meant] + alertLag
		if held := r.Healed.Sub(r.Injected); held < need {
			notes = append(notes, fmt.Sprintf("%s not checked: the fault held %s, its for: needs at least %s", meant, held.Round(time.Second), need))
		} else {
			cks = append(cks, check(meant+" fired", fired[meant], "firing during the fault: %s", report.OrNone(a.Fired)))
		}
	}
	// Unrelated: alerts that started between this fault and the next (or,
	// for the first, before it) and that nothing explains.
	from, to := r.Injected, time.Time{}
	if first {
		from = time.Time{}
	}
	for _, o := range all {
		if o.Injected.After(r.Injected) && (to.IsZero() || o.Injected.Before(to)) {
			to = o.Injected
		}
	}
	seen := map[string]bool{}
	for _, sp := range in.Alerts {
		if sp.From.Before(from) || (!to.IsZero() && !sp.From.Before(to)) || seen[sp.Name] {
			continue
		}
		if slices.Contains(LoadAlerts, sp.Name) || explained(sp, all, in.AlertFor) {
			continue
		}
		seen[sp.Name] = true
		a.Unrelated = append(a.Unrelated, sp.Name)
	}
	sort.Strings(a.Unrelated)
	cks = append(cks, check("no unrelated alert fired", len(a.Unrelated) == 0, "unrelated: %s", report.OrNone(a.Unrelated)))
	return a, cks, notes
}

// explained: some fault meant it, or it is a symptom alert, within that
// fault's influence (its window plus the alert's for: plus the 5 m rate
// windows of the symptom rules).
func explained(sp AlertSpan, all []Record, alertFor map[string]time.Duration) bool {
	for _, r := range all {
		if r.Injected.IsZero() {
			continue
		}
		until := r.Healed.Add(alertFor[sp.Name] + 6*time.Minute)
		if sp.From.Before(r.Injected) || sp.From.After(until) {
			continue
		}
		if MeantAlert(r.Spec) == sp.Name || slices.Contains(SymptomAlerts, sp.Name) {
			return true
		}
	}
	return false
}
