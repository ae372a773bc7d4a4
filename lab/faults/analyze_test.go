package faults

import (
	"strings"
	"testing"
	"time"

	"github.com/hal9-lab/hal9-lab/lab/report"
)

var t0 = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

func at(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }

// traffic makes 20 requests a second from 0 to end s; fail decides the
// status of a request started at second x (0: fine).
func traffic(end float64, fail func(x float64) (status int, retryAfter bool)) []Req {
	var out []Req
	for x := 0.0; x < end; x += 0.05 {
		r := Req{Start: at(x), End: at(x + 0.02), Status: 200}
		if st, ra := fail(x); st != 0 || ra {
			r.Status, r.RetryAfter = st, ra
		}
		out = append(out, r)
	}
	return out
}

func ok(float64) (int, bool) { return 0, false }

func spec(target, kind string, atS, durS float64) Spec {
	return Spec{Target: target, Kind: kind, At: time.Duration(atS * float64(time.Second)), Duration: time.Duration(durS * float64(time.Second))}
}

func rec(s Spec, injected, healed float64) Record {
	return Record{Spec: s, Injected: at(injected), Healed: at(healed)}
}

func checkNamed(t *testing.T, f report.FaultResult, name string) report.FaultCheck {
	t.Helper()
	for _, c := range f.Checks {
		if strings.HasPrefix(c.Name, name) {
			return c
		}
	}
	t.Fatalf("%s: no check %q in %+v", f.Name, name, f.Checks)
	return report.FaultCheck{}
}

func TestAnalyzePostgresCrash(t *testing.T) {
	// Down from 10 to 14 s: 503 + Retry-After while down, fine 1 s after.
	reqs := traffic(40, func(x float64) (int, bool) {
		if x >= 10.2 && x < 15 {
			return 503, true
		}
		return 0, false
	})
	health := []Health{{T: at(9.5), Ready: "ready"}, {T: at(10.1), Ready: "unavailable", StoreUp: 0}}
	res := Analyze(Input{Records: []Record{rec(spec(Postgres, "crash", 10, 4), 10, 14)}, Requests: reqs, Health: health, End: at(40)})
	f := res[0]
	if !f.Passed() {
		t.Fatalf("a clean crash must pass: %+v", f.Checks)
	}
	if f.FailedByStatus["503"] == 0 || f.Failed != f.FailedByStatus["503"] {
		t.Errorf("failed by status %v", f.FailedByStatus)
	}
	if f.DetectMS == nil || *f.DetectMS > 150 || !strings.Contains(f.DetectedBy, "readyz") {
		t.Errorf("detect %v by %q, want about 100 ms by /readyz", f.DetectMS, f.DetectedBy)
	}
	if f.RecoverMS == nil || *f.RecoverMS != 1000 {
		t.Errorf("recover %v, want 1000 ms", f.RecoverMS)
	}

	// 500s, 503s without Retry-After, and failures long after the return fail it.
	bad := traffic(40, func(x float64) (int, bool) {
		switch {
		case x >= 10.2 && x < 11:
			return 500, false
		case x >= 11 && x < 12:
			return 503, false
		case x >= 21 && x < 22:
			return 503, true
		}
		return 0, false
	})
	f = Analyze(Input{Records: []Record{rec(spec(Postgres, "crash", 10, 4), 10, 14)}, Requests: bad, End: at(40)})[0]
	if f.Passed() || checkNamed(t, f, "every failure a 503").OK {
		t.Errorf("500s and 503s without Retry-After must fail: %+v", f.Checks)
	}
	if c := checkNamed(t, f, "recovered within 5s"); c.OK {
		t.Errorf("failures 7 s after the return must fail the 5 s recovery: %+v (recover %v)", c, *f.RecoverMS)
	}
}

func TestAnalyzeRedisNo5xx(t *testing.T) {
	clean := Analyze(Input{Records: []Record{rec(spec(Redis, "kill", 5, 5), 5, 10)}, Requests: traffic(30, ok), End: at(30)})[0]
	if !clean.Passed() || clean.Tried == 0 || clean.Failed != 0 {
		t.Errorf("no failure: %+v", clean)
	}
	if *clean.RecoverMS != 0 || clean.DetectMS != nil {
		t.Errorf("nothing to detect or recover from: detect %v, recover %v", clean.DetectMS, *clean.RecoverMS)
	}
	one := Analyze(Input{Records: []Record{rec(spec(Redis, "kill", 5, 5), 5, 10)},
		Requests: traffic(30, func(x float64) (int, bool) { return map[bool]int{true: 503}[x > 7 && x < 7.06], x > 7 && x < 7.06 }), End: at(30)})[0]
	if one.Passed() || checkNamed(t, one, "no 5xx").OK {
		t.Errorf("one 503 during a Redis loss must fail: %+v", one.Checks)
	}
}

// Requests cut by the next fault belong to it, not to the one before.
func TestAnalyzeNextFaultsFailures(t *testing.T) {
	reqs := traffic(40, ok)
	reqs = append(reqs, Req{Start: at(19.9), End: at(20.4), Status: 0}, Req{Start: at(20.1), End: at(20.2), Status: 503, RetryAfter: true})
	res := Analyze(Input{Records: []Record{rec(spec(Postgres, "restart", 10, 0), 10, 11), rec(spec(Postgres, "crash", 20, 2), 20, 22)}, Requests: reqs, End: at(40)})
	if !res[0].Passed() || *res[0].RecoverMS != 0 || res[0].Failed != 0 {
		t.Errorf("the restart was charged with the crash's failures: %+v recover %v", res[0].Checks, *res[0].RecoverMS)
	}
	if res[1].Failed != 1 {
		t.Errorf("the crash: %v failed, want 1 (the one started within it)", res[1].Failed)
	}
}

func TestAnalyzeNotRecovered(t *testing.T) {
	reqs := traffic(20, func(x float64) (int, bool) { return map[bool]int{true: 503}[x >= 5], x >= 5 })
	f := Analyze(Input{Records: []Record{rec(spec(LLM, "error-rate", 5, 5), 5, 10)}, Requests: reqs, End: at(20)})[0]
	if f.RecoverMS != nil || checkNamed(t, f, "recovered").OK {
		t.Errorf("failing until the end: recover %v, %+v", f.RecoverMS, f.Checks)
	}
}

func TestAnalyzeSigterm(t *testing.T) {
	code := 0
	r := rec(spec(Server, "sigterm", 10, 0), 10, 11)
	r.ExitCode = &code
	reqs := traffic(30, func(x float64) (int, bool) { return map[bool]int{true: 0}[x > 10 && x < 11], false })
	// The server is down between 10 and 11 s: new requests are refused
	// (status 0), which is expected; in flight at 10 s, none failed.
	for i := range reqs {
		if reqs[i].Start.After(at(10)) && reqs[i].Start.Before(at(11)) {
			reqs[i].Status = 0
		}
	}
	f := Analyze(Input{Records: []Record{r}, Requests: reqs, End: at(30)})[0]
	if !checkNamed(t, f, "no in-flight request failed").OK || !checkNamed(t, f, "exit 0").OK {
		t.Errorf("%+v", f.Checks)
	}
	// A request started before the signal and cut by it fails the check.
	reqs = append(reqs, Req{Start: at(9.9), End: at(10.3), Status: 0})
	f = Analyze(Input{Records: []Record{r}, Requests: reqs, End: at(30)})[0]
	if checkNamed(t, f, "no in-flight request failed").OK {
		t.Errorf("an in-flight request failed but the check passed: %+v", f.Checks)
	}
	code = 1
	if checkNamed(t, Analyze(Input{Records: []Record{r}, Requests: reqs, End: at(30)})[0], "exit 0").OK {
		t.Error("exit 1 after SIGTERM passed")
	}
}

func TestAnalyzeRateLimitStorm(t *testing.T) {
	r := rec(spec(LLM, "rate-limit", 10, 10), 10, 20)
	reqs := traffic(60, func(x float64) (int, bool) { return map[bool]int{true: 503}[x >= 11 && x < 40], x >= 11 && x < 40 })
	var hs []Health
	for x := 0.0; x < 60; x += 0.5 {
		h := Health{T: at(x), Ready: "ready"}
		if x >= 11 && x < 40 {
			h.BreakersOpen, h.CircuitOpenCalls = 2, (x-11)*10
		}
		if x >= 40 {
			h.CircuitOpenCalls = 290
		}
		hs = append(hs, h)
	}
	f := Analyze(Input{Records: []Record{r}, Requests: reqs, Health: hs, End: at(60)})[0]
	for _, name := range []string{"the breaker opened", "load was shed", "half-open probes closed the breakers", "recovered"} {
		if c := checkNamed(t, f, name); !c.OK {
			t.Errorf("%s: %+v", name, c)
		}
	}
	// A breaker that never opens fails the storm's verdict.
	for i := range hs {
		hs[i].BreakersOpen, hs[i].CircuitOpenCalls = 0, 0
	}
	f = Analyze(Input{Records: []Record{r}, Requests: reqs, Health: hs, End: at(60)})[0]
	if checkNamed(t, f, "the breaker opened").OK || checkNamed(t, f, "load was shed").OK {
		t.Errorf("no breaker opened but the checks passed: %+v", f.Checks)
	}
}

func TestAnalyzeAlerts(t *testing.T) {
	redis := rec(spec(Redis, "kill", 10, 75), 10, 85)
	down := rec(spec(Server, "sigkill", 200, 75), 200, 275) // held down 75 s
	forOf := map[string]time.Duration{"HAL9RedisUnavailable": time.Minute, "HAL9Down": time.Minute, "HAL9ErrorBudgetBurn": 2 * time.Minute}
	in := Input{Records: []Record{redis, down}, Requests: traffic(400, ok), End: at(400), AlertFor: forOf,
		Alerts: []AlertSpan{
			{Name: "HAL9RedisUnavailable", From: at(72), To: at(86)},
			{Name: "HAL9ErrorBudgetBurn", From: at(330), To: at(390)},        // a symptom of the kill
			{Name: "HAL9LLMHourlyBudgetWarning", From: at(100), To: at(400)}, // follows the load
			{Name: "HAL9LoadApproachingCapacity", From: at(30), To: at(400)}, // follows the load against --capacity-rps
			{Name: "HAL9Down", From: at(262), To: at(276)},
		}}
	res := Analyze(in)
	for _, f := range res {
		if !f.Passed() {
			t.Errorf("%s: %+v", f.Name, f.Checks)
		}
	}
	if a := res[0].Alerts; a == nil || len(a.Meant) != 1 || a.Meant[0] != "HAL9RedisUnavailable" {
		t.Errorf("alerts %+v", a)
	}
	// HAL9Down during the Redis fault is unrelated; the meant alert missing fails.
	in.Alerts = []AlertSpan{{Name: "HAL9Down", From: at(40), To: at(50)}}
	res = Analyze(in)
	if c := checkNamed(t, res[0], "no unrelated alert fired"); c.OK || !strings.Contains(c.Detail, "HAL9Down") {
		t.Errorf("HAL9Down during a Redis loss: %+v", c)
	}
	if c := checkNamed(t, res[0], "HAL9RedisUnavailable fired"); c.OK {
		t.Errorf("the meant alert did not fire but passed: %+v", c)
	}
	// A fault shorter than its alert's for: is not judged on it.
	short := rec(spec(Redis, "kill", 10, 20), 10, 30)
	f := Analyze(Input{Records: []Record{short}, Requests: traffic(60, ok), End: at(60), AlertFor: forOf, Alerts: []AlertSpan{}})[0]
	if !f.Passed() || !strings.Contains(strings.Join(f.Notes, " "), "not checked") {
		t.Errorf("short fault: %+v %v", f.Checks, f.Notes)
	}
}

func TestMeantAlert(t *testing.T) {
	none := "none"
	for _, c := range []struct {
		s    Spec
		want string
	}{
		{Spec{Target: Redis, Kind: "pause"}, "HAL9RedisUnavailable"},
		{Spec{Target: Postgres, Kind: "restart"}, ""},
		{Spec{Target: Postgres, Kind: "stop"}, "HAL9StoreUnavailable"},
		{Spec{Target: Network, Kind: "blackhole", Backend: Redis}, "HAL9RedisUnavailable"},
		{Spec{Target: Network, Kind: "latency", Backend: Postgres}, ""},
		{Spec{Target: LLM, Kind: "latency-scale"}, ""},
		{Spec{Target: LLM, Kind: "rate-limit"}, "HAL9CircuitBreakersOpen"},
		{Spec{Target: Server, Kind: "sigkill", Duration: time.Minute}, "HAL9Down"},
		{Spec{Target: Server, Kind: "sigterm"}, ""},
		{Spec{Target: Server, Kind: "sigkill", Alert: &none}, ""},
	} {
		if got := MeantAlert(c.s); got != c.want {
			t.Errorf("%s %s: %q, want %q", c.s.Target, c.s.Kind, got, c.want)
		}
	}
}
