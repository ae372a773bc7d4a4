package llm

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// scripted is a fake Provider that returns the next scripted error (nil:
// success) or blocks until ctx ends for errBlock.
type scripted struct {
	mu    sync.Mutex
	errs  []error
	calls int
}

var errBlock = errors.New("block until ctx ends")

func (s *scripted) push(errs ...error) {
	s.mu.Lock()
	s.errs = append(s.errs, errs...)
	s.mu.Unlock()
}

func (s *scripted) Complete(ctx context.Context, req Request) (Response, error) {
	s.mu.Lock()
	s.calls++
	var err error
	if len(s.errs) > 0 {
		err, s.errs = s.errs[0], s.errs[1:]
	}
	s.mu.Unlock()
	if err == errBlock {
		<-ctx.Done()
		return Response{}, ctx.Err()
	}
	if err != nil {
		return Response{}, err
	}
	return Response{Text: "ok", TokensIn: 100, TokensOut: 50, CostUSD: Cost(req.Model, 100, 50)}, nil
}

func repeat(err error, n int) []error {
	out := make([]error, n)
	for i := range out {
		out[i] = err
	}
	return out
}

// fastBreaker: millisecond durations so transitions happen within a test.
var fastBreaker = BreakerOptions{Interval: time.Minute, Buckets: 1, OpenFor: 30 * time.Millisecond}

func call(g *Guard, layer string) error {
	_, err := g.Complete(context.Background(), Request{Layer: layer, Prompt: "p"})
	return err
}

// waitState polls BreakerStates (which also advances open → half-open)
// until want or a bounded deadline.
func waitState(t *testing.T, g *Guard, name, want string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for g.BreakerStates()[name] != want {
		if time.Now().After(deadline) {
			t.Fatalf("%s: state %q, want %q", name, g.BreakerStates()[name], want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestGuardBreakerTransitions(t *testing.T) {
	apiErr := &APIError{Status: 503}
	m := NewMetrics(prometheus.NewRegistry())
	p := &scripted{}
	g := NewGuard(p, GuardOptions{Breaker: fastBreaker, Metrics: m})
	gauge := func() float64 { return testutil.ToFloat64(m.BreakerState.WithLabelValues("llm_L2")) }

	// closed: 4 failures keep it closed, the 5th opens it.
	p.push(repeat(apiErr, 5)...)
	for i := range 4 {
		if err := call(g, "L2"); !errors.As(err, new(*APIError)) {
			t.Fatalf("call %d: %v, want APIError", i, err)
		}
		if s := g.BreakerStates()["llm_L2"]; s != "closed" {
			t.Fatalf("after %d failures: %s, want closed", i+1, s)
		}
	}
	_ = call(g, "L2")
	if s := g.BreakerStates()["llm_L2"]; s != "open" || gauge() != 2 {
		t.Fatalf("after 5 failures: %s gauge %v, want open 2", s, gauge())
	}
	// open: refused at once, provider not called.
	before := p.calls
	if err := call(g, "L2"); !errors.Is(err, ErrCircuitOpen) {
		t.Fatalf("open breaker: %v, want ErrCircuitOpen", err)
	}
	if p.calls != before {
		t.Fatal("open breaker called the provider")
	}
	// other layers are independent.
	if err := call(g, "L1"); err != nil {
		t.Fatalf("L1 while L2 open: %v", err)
	}

	// half-open after OpenFor; 3 successes close it.
	waitState(t, g, "llm_L2", "half-open")
	if gauge() != 1 {
		t.Fatalf("half-open gauge %v, want 1", gauge())
	}
	for i := range 3 {
		if err := call(g, "L2"); err != nil {
			t.Fatalf("half-open success %d: %v", i, err)
		}
	}
	if s := g.BreakerStates()["llm_L2"]; s != "closed" || gauge() != 0 {
		t.Fatalf("after 3 successes: %s gauge %v, want closed 0", s, gauge())
	}

	// half-open → open on one failure.
	p.push(repeat(apiErr, 5)...)
	for range 5 {
		_ = call(g, "L2")
	}
	waitState(t, g, "llm_L2", "half-open")
	p.push(apiErr)
	_ = call(g, "L2")
	if s := g.BreakerStates()["llm_L2"]; s != "open" || gauge() != 2 {
		t.Fatalf("failure in half-open: %s gauge %v, want open 2", s, gauge())
	}
	if n := testutil.ToFloat64(m.Requests.WithLabelValues(DefaultModel, "L2", OutcomeCircuitOpen)); n != 1 {
		t.Fatalf("circuit_open outcomes %v, want 1", n)
	}
}

func TestGuardCountsTimeoutsApartFromAPIErrors(t *testing.T) {
	m := NewMetrics(prometheus.NewRegistry())
	p := &scripted{}
	g := NewGuard(p, GuardOptions{Timeout: 20 * time.Millisecond, Breaker: fastBreaker, Metrics: m})
	p.push(errBlock, errBlock, &APIError{Status: 500}, &APIError{Status: 529, Message: "overloaded"})

	var timeouts, apis int
	for range 4 {
		err := call(g, "L3")
		switch {
		case errors.Is(err, ErrTimeout):
			timeouts++
			if errors.Is(err, context.DeadlineExceeded) {
				t.Fatal("ErrTimeout must not look like the caller's deadline")
			}
		case errors.As(err, new(*APIError)):
			apis++
		default:
			t.Fatalf("unexpected %v", err)
		}
	}
	if timeouts != 2 || apis != 2 {
		t.Fatalf("timeouts %d api errors %d, want 2 and 2", timeouts, apis)
	}
	for _, c := range []struct {
		vec  *prometheus.CounterVec
		lbl  []string
		want float64
	}{
		{m.Requests, []string{DefaultModel, "L3", OutcomeTimeout}, 2},
		{m.Requests, []string{DefaultModel, "L3", OutcomeError}, 2},
		{m.BreakerFailures, []string{"llm_L3", "timeout"}, 2},
		{m.BreakerFailures, []string{"llm_L3", "api_error"}, 2},
	} {
		if got := testutil.ToFloat64(c.vec.WithLabelValues(c.lbl...)); got != c.want {
			t.Errorf("%v = %v, want %v", c.lbl, got, c.want)
		}
	}
	// 4 failures: still closed; the 5th (a timeout) opens: both kinds count.
	p.push(errBlock)
	_ = call(g, "L3")
	if s := g.BreakerStates()["llm_L3"]; s != "open" {
		t.Fatalf("after 2 timeouts + 2 API errors + 1 timeout: %s, want open", s)
	}
}

func TestGuardExcludesRateLimitsAndCallerCancellation(t *testing.T) {
	m := NewMetrics(prometheus.NewRegistry())
	p := &scripted{}
	g := NewGuard(p, GuardOptions{Breaker: fastBreaker, Metrics: m})
	p.push(repeat(&RateLimitError{RetryAfter: time.Second}, 10)...)
	for range 10 {
		err := call(g, "L4")
		if !errors.Is(err, ErrRateLimited) {
			t.Fatalf("%v, want ErrRateLimited", err)
		}
		if d, ok := RetryAfter(err); !ok || d != time.Second {
			t.Fatalf("RetryAfter = %v %v, want 1s", d, ok)
		}
	}
	// caller cancellation: neither a timeout nor a failure.
	for range 6 {
		p.push(errBlock)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Millisecond)
		_, err := g.Complete(ctx, Request{Layer: "L4"})
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrTimeout) {
			t.Fatalf("caller deadline: %v, want context.DeadlineExceeded", err)
		}
	}
	if s := g.BreakerStates()["llm_L4"]; s != "closed" {
		t.Fatalf("after 10 rate limits and 6 cancellations: %s, want closed", s)
	}
	if n := testutil.ToFloat64(m.Requests.WithLabelValues(DefaultModel, "L4", OutcomeRateLimited)); n != 10 {
		t.Fatalf("rate_limited = %v, want 10", n)
	}
	if n := testutil.ToFloat64(m.Requests.WithLabelValues(DefaultModel, "L4", OutcomeCanceled)); n != 6 {
		t.Fatalf("canceled = %v, want 6", n)
	}
}

// A few 429s in a row are the provider pacing us; a storm of them (more
// than RateLimitStorm in a row) counts as failures and opens the breaker,
// and a success resets the count.
func TestGuardRateLimitStormOpensBreaker(t *testing.T) {
	m := NewMetrics(prometheus.NewRegistry())
	p := &scripted{}
	g := NewGuard(p, GuardOptions{Breaker: fastBreaker, Metrics: m})
	p.push(repeat(&RateLimitError{}, 10)...)
	p.push(nil)
	p.push(repeat(&RateLimitError{}, 10)...)
	for range 21 {
		_ = call(g, "L2")
	}
	if s := g.BreakerStates()["llm_L2"]; s != "closed" {
		t.Fatalf("10 + 10 429s with a success between: %s, want closed", s)
	}
	const failures = 5 // the default that opens a breaker
	p.push(repeat(&RateLimitError{}, failures)...)
	for range failures {
		_ = call(g, "L2")
	}
	if s := g.BreakerStates()["llm_L2"]; s != "open" {
		t.Fatalf("after a storm of %d 429s in a row: %s, want open", 10+failures, s)
	}
	if n := testutil.ToFloat64(m.BreakerFailures.WithLabelValues("llm_L2", "rate_limited")); n != failures {
		t.Fatalf("rate_limited failures %v, want %d", n, failures)
	}
	if err := call(g, "L2"); !errors.Is(err, ErrCircuitOpen) {
		t.Fatalf("open breaker: %v, want ErrCircuitOpen (load shed)", err)
	}
}

func TestGuardRejectsUnknownLayer(t *testing.T) {
	g := NewGuard(&scripted{}, GuardOptions{})
	for _, layer := range []string{"", "L0", "L6", "l1"} {
		if err := call(g, layer); !errors.Is(err, ErrUnknownLayer) || !strings.Contains(err.Error(), "L1") {
			t.Errorf("layer %q: %v, want ErrUnknownLayer naming the valid ones", layer, err)
		}
	}
}

func TestGuardCostAccounting(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	ledger := NewLedger(LedgerOptions{Metrics: m})
	sim := NewSimulated(SimOptions{Seed: 7, ErrorRate: 0.2})
	g := NewGuard(sim, GuardOptions{Metrics: m, Ledger: ledger})

	var sum float64
	var in, out int
	ok := 0
	for i := range 300 {
		layer := Layers[i%5]
		resp, err := g.Complete(context.Background(), Request{Layer: layer, NeuronID: "n", Prompt: strings.Repeat("x", i)})
		if err != nil {
			continue
		}
		ok++
		if resp.CostUSD <= 0 {
			t.Fatalf("call %d: cost %v, want > 0 (the original never recorded cost)", i, resp.CostUSD)
		}
		sum += resp.CostUSD
		in += resp.TokensIn
		out += resp.TokensOut
	}
	if ok == 0 || ok == 300 {
		t.Fatalf("%d of 300 succeeded; want some failures injected and some successes", ok)
	}
	const eps = 1e-9
	if got := testutil.ToFloat64(m.Cost.WithLabelValues(DefaultModel)); abs(got-sum) > eps {
		t.Fatalf("cost counter %v, sum of responses %v", got, sum)
	}
	if got := ledger.Snapshot().TotalUSD; abs(got-sum) > eps {
		t.Fatalf("ledger total %v, sum of responses %v", got, sum)
	}
	if got := testutil.ToFloat64(m.Tokens.WithLabelValues(DefaultModel, "input")); got != float64(in) {
		t.Fatalf("input tokens %v, want %d", got, in)
	}
	if got := testutil.ToFloat64(m.Tokens.WithLabelValues(DefaultModel, "output")); got != float64(out) {
		t.Fatalf("output tokens %v, want %d", got, out)
	}
	if n := testutil.CollectAndCount(m.Duration); n != 5 {
		t.Fatalf("duration series %d, want one per layer", n)
	}
	// every metric name of the contract is exported.
	for _, n := range []string{"hal9_llm_requests_total", "hal9_llm_request_duration_seconds", "hal9_llm_tokens_total",
		"hal9_llm_cost_dollars_total", "hal9_circuit_breaker_state", "hal9_llm_budget_dollars", "hal9_llm_budget_warnings_total"} {
		if c, err := testutil.GatherAndCount(reg, n); err != nil || c == 0 {
			t.Errorf("metric %s not exported (%v)", n, err)
		}
	}
}

func TestGuardEnforcedBudget(t *testing.T) {
	m := NewMetrics(prometheus.NewRegistry())
	ledger := NewLedger(LedgerOptions{Budgets: Budgets{HourlyUSD: 0.5, Enforce: true}, Metrics: m})
	g := NewGuard(NewSimulated(SimOptions{}), GuardOptions{Metrics: m, Ledger: ledger, DefaultModel: "claude-opus-4"})
	var err error
	for i := 0; i < 1000 && err == nil; i++ {
		_, err = g.Complete(context.Background(), Request{Layer: "L5", Prompt: "plan"})
	}
	if !errors.Is(err, ErrBudgetExceeded) {
		t.Fatalf("%v, want ErrBudgetExceeded", err)
	}
	if n := testutil.ToFloat64(m.Requests.WithLabelValues("claude-opus-4", "L5", OutcomeBudgetExceeded)); n != 1 {
		t.Fatalf("budget_exceeded outcomes %v, want 1", n)
	}
}

func abs(f float64) float64 {
	if f < 0 {
		return -f
	}
	return f
}

func TestGuardSimulatedRateLimit(t *testing.T) {
	m := NewMetrics(prometheus.NewRegistry())
	g := NewGuard(NewSimulated(SimOptions{RateLimitRPM: 6}), GuardOptions{Metrics: m, Breaker: fastBreaker})
	if err := call(g, "L1"); err != nil {
		t.Fatal(err)
	}
	for range 10 {
		if err := call(g, "L1"); !errors.Is(err, ErrRateLimited) {
			t.Fatalf("%v, want ErrRateLimited", err)
		}
	}
	if n := testutil.ToFloat64(m.Requests.WithLabelValues(DefaultModel, "L1", OutcomeRateLimited)); n != 10 {
		t.Fatalf("rate_limited %v, want 10", n)
	}
	if s := g.BreakerStates()["llm_L1"]; s != "closed" {
		t.Fatalf("429s opened the breaker: %s", s)
	}
}

// TestGuardReservesAndSettles: the worst case is reserved before the
// provider is called (other calls see it at once), a call that answers
// settles at its price, one cut by the guard's timeout at its whole
// reservation, one refused by the provider or the breaker at nothing; the
// user in the context is charged.
func TestGuardReservesAndSettles(t *testing.T) {
	m := NewMetrics(prometheus.NewRegistry())
	ledger := NewLedger(LedgerOptions{Budgets: Budgets{HourlyUSD: 100, DailyUSD: 1000, Enforce: true, UserCalls: 1}, Metrics: m})
	p := &scripted{}
	g := NewGuard(p, GuardOptions{Metrics: m, Ledger: ledger, Timeout: 50 * time.Millisecond, Breaker: fastBreaker})
	req := Request{Layer: "L2", Prompt: strings.Repeat("p", 100), MaxTokens: 512}
	worst := g.WorstCost(req)
	if want := Cost(DefaultModel, 100+framingTokens, 512); !near(worst, want) {
		t.Fatalf("WorstCost %v, want %v (bytes + framing in, max_tokens out)", worst, want)
	}
	ctx := WithUser(context.Background(), "alice")

	// A call cut by the timeout: while it runs, the reservation holds
	// alice's one call and the spend; after, it stays charged in full.
	p.push(errBlock)
	done := make(chan error)
	go func() { _, err := g.Complete(ctx, req); done <- err }()
	deadline := time.Now().Add(5 * time.Second)
	for ledger.Snapshot().InFlightUSD == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if s := ledger.Snapshot(); !near(s.HourUSD, worst) {
		t.Fatalf("during the call: %+v, want the worst case $%v reserved", s, worst)
	}
	if _, err := g.Complete(ctx, req); !errors.Is(err, ErrUserLimit) {
		t.Fatalf("alice's second call while her first runs: %v, want ErrUserLimit (cap 1)", err)
	}
	if err := <-done; !errors.Is(err, ErrTimeout) {
		t.Fatalf("blocked call: %v, want ErrTimeout", err)
	}
	if s := ledger.Snapshot(); !near(s.HourUSD, worst) || !near(s.TotalUSD, worst) {
		t.Fatalf("after the timeout: %+v, want the reservation charged", s)
	}
	// A provider error is not billed; an answer is billed at its price.
	p.push(&APIError{Status: 500})
	if _, err := g.Complete(ctx, req); err == nil {
		t.Fatal("scripted 500 succeeded")
	}
	resp, err := g.Complete(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if s := ledger.Snapshot(); !near(s.HourUSD, worst+resp.CostUSD) {
		t.Fatalf("after an error and an answer: hour $%v, want $%v", s.HourUSD, worst+resp.CostUSD)
	}
	if n := testutil.ToFloat64(m.Requests.WithLabelValues(DefaultModel, "L2", OutcomeUserLimited)); n != 1 {
		t.Fatalf("user_limited outcomes %v, want 1", n)
	}
	if got := testutil.ToFloat64(m.BudgetReserved); !near(got, 3*worst) {
		t.Fatalf("reserved $%v over 3 admitted calls of $%v", got, worst)
	}
}
