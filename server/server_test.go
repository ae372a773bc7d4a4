package server

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestRateLimiterBounded(t *testing.T) {
	rl := newRateLimiter(5, nil)
	rl.maxKeys = 100
	now := time.Unix(1000, 0)
	rl.now = func() time.Time { return now }
	for i := range 1000 {
		now = now.Add(time.Millisecond)
		rl.allow("k" + strings.Repeat("x", i%7) + string(rune('a'+i%26)) + time.Duration(i).String())
	}
	if n := rl.size(); n > 100 {
		t.Fatalf("size %d over the bound", n)
	}
	now = now.Add(time.Hour)
	rl.allow("fresh")
	if n := rl.size(); n != 1 {
		t.Fatalf("idle buckets not evicted: %d", n)
	}
	// per-key: one key exhausted does not limit another.
	for range 5 {
		rl.allow("a")
	}
	// 5/s: the next token comes 200 ms later; the wait is rounded up to
	// the 1 s a Retry-After header can say.
	if ok, wait := rl.allow("a"); ok || wait != time.Second {
		t.Fatalf("a allowed=%v wait=%v, want refused with a 1s wait", ok, wait)
	}
	now = now.Add(100 * time.Millisecond)
	if ok, _ := rl.allow("a"); ok {
		t.Fatal("a allowed after 100ms: half a token")
	}
	now = now.Add(100 * time.Millisecond)
	if ok, _ := rl.allow("a"); !ok {
		t.Fatal("a refused 200ms after exhausting a 5/s bucket: the refill is not working")
	}
	if ok, _ := rl.allow("b"); !ok {
		t.Fatal("b refused")
	}
}

func TestPanicRecovered(t *testing.T) {
	m := newHTTPMetrics(prometheus.NewRegistry())
	h := requestID(slog.New(slog.DiscardHandler), recoverer(m.instrument(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		panic("boom")
	}))))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/x", nil))
	if rec.Code != 500 || !strings.Contains(rec.Body.String(), `"code":"internal"`) {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	if got := testutil.ToFloat64(m.requests.WithLabelValues("unmatched", "GET", "500")); got != 1 {
		t.Fatalf("500 not counted: %v", got)
	}
}
