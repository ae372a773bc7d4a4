package app

import (
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"testing"
)

// TestBudgetHoldsUnderConcurrency is issue 18's scenario: with the budget
// enforced, 120 concurrent uncached L3 signals (from 120 users, so no
// user's share is what stops them) may spend at most the budget plus one
// signal's cost. Before reservations every first hop passed the check at
// once (nothing had been charged yet) and the 120 signals spent about ten
// times the budget although 119 were refused.
func TestBudgetHoldsUnderConcurrency(t *testing.T) {
	const budget = 0.05
	a := startApp(t, func(c *Config) {
		c.LLMBudgetEnforce, c.LLMBudgetHourly = "on", budget
		c.LLMLatencyScale = 8 // an L3 hop takes about 0.6 s: the signals overlap
	})
	const n = 120
	toks := make([]string, n)
	for i := range toks {
		toks[i], _ = a.user()
	}
	before := sum(a.scrape(), "hal9_llm_cost_dollars_total", nil)

	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		statuses = map[string]int{}
		maxCost  float64
	)
	for i, tok := range toks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := a.do("POST", "/api/v1/signals", map[string]string{"content": fmt.Sprintf("budget question %d", i), "layer": "L3"}, bearer(tok)...)
			cost, _ := strconv.ParseFloat(r.Header.Get("X-Hal9-Cost-Usd"), 64)
			mu.Lock()
			defer mu.Unlock()
			statuses[fmt.Sprint(r.Status, " ", r.errCode())]++
			if r.Status == http.StatusOK {
				maxCost = max(maxCost, cost)
			}
		}()
	}
	wg.Wait()
	// Every answer is in, and a signal's hops run one after another in its
	// request: no LLM call of these signals is still running.
	spent := sum(a.scrape(), "hal9_llm_cost_dollars_total", nil) - before
	t.Logf("spent $%.4f of a $%.2f budget; answers %v; the costliest signal answered $%.4f", spent, budget, statuses, maxCost)
	if limit := budget + maxCost; spent > limit {
		t.Fatalf("spent $%.4f, over the budget plus one signal ($%.4f)", spent, limit)
	}
	if statuses["200 "] == 0 {
		t.Fatalf("no signal was answered within the budget: %v", statuses)
	}
	for s := range statuses {
		switch s {
		case "200 ", "503 budget_exceeded", "429 rate_limited":
		default:
			t.Errorf("unexpected answer %q (%d times)", s, statuses[s])
		}
	}
}
