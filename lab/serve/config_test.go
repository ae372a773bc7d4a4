package serve_test

import (
	"strings"
	"testing"

	"github.com/hal9-lab/hal9-lab/lab/serve"
)

func TestDepartures(t *testing.T) {
	def := map[string]any{"bcrypt-cost": 10.0, "rate-limit": 1000.0, "auth-rate-limit": 5.0, "shutdown-timeout": "1m0s", "llm": "sim",
		"addr": "127.0.0.1:8080", "db-max-conns": 100.0, "llm-latency-scale": 1.0, "http-max-conns-per-client": 256.0}
	eff := map[string]any{"bcrypt-cost": 4.0, "rate-limit": 0.0, "auth-rate-limit": 0.0, "shutdown-timeout": "10s", "llm": "sim",
		"addr": "127.0.0.1:39000", "db-max-conns": 20.0, "llm-latency-scale": 1.0, "http-max-conns-per-client": 0.0}
	got := strings.Join(serve.Departures(def, eff), "\n")
	for _, want := range []string{
		"bcrypt cost 4 instead of 10",
		"API rate limit off (production: 1000 req/s per client)",
		"credential-route limiter off: every virtual user comes from 127.0.0.1",
		"connection cap per client IP off (production: 256 open connections per client)",
		"drain time on SIGTERM 10s instead of 1m0s",
		"--db-max-conns 20 instead of 100",
		"simulated LLM provider",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("departures lack %q:\n%s", want, got)
		}
	}
	for _, not := range []string{"addr", "latency ×"} {
		if strings.Contains(got, not) {
			t.Errorf("departures mention %q (the same as production, or local only):\n%s", not, got)
		}
	}
	if d := serve.Departures(map[string]any{"llm": "anthropic"}, map[string]any{"llm": "anthropic"}); len(d) != 0 {
		t.Errorf("production's own settings: %v", d)
	}
}
