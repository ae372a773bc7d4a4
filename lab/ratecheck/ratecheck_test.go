package ratecheck_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hal9-lab/hal9-lab/lab/ratecheck"
)

// bucket is a token bucket of limit per second (burst limit) in front of a
// 200: what the server's --rate-limit does for one client.
type bucket struct {
	mu         sync.Mutex
	limit      float64
	tokens     float64
	last       time.Time
	retryAfter string
}

func (b *bucket) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b.mu.Lock()
	now := time.Now()
	if b.last.IsZero() {
		b.tokens = b.limit
	} else {
		b.tokens = min(b.limit, b.tokens+now.Sub(b.last).Seconds()*b.limit)
	}
	b.last = now
	ok := b.tokens >= 1
	if ok {
		b.tokens--
	}
	b.mu.Unlock()
	if !ok {
		if b.retryAfter != "" {
			w.Header().Set("Retry-After", b.retryAfter)
		}
		w.WriteHeader(http.StatusTooManyRequests)
	}
}

func TestRun(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: four loads of 3 s")
	}
	// Above at 3× the limit: the bucket holds a burst of 20 and refills 20
	// in the 1 s load, so 2× (40 requests) would sit right at its edge.
	check := ratecheck.Check{Limit: 20, Below: 0.5, Above: 3, Duration: time.Second}
	for _, tt := range []struct {
		name    string
		h       http.Handler
		ok      bool
		problem string
	}{
		{"a limiter at the limit", &bucket{limit: 20, retryAfter: "1"}, true, ""},
		{"no limiter", http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}), false, "no 429 among"},
		{"429s without Retry-After", &bucket{limit: 20}, false, "lack a valid Retry-After"},
		{"a limiter at a fifth of the limit", &bucket{limit: 4, retryAfter: "1"}, false, "(below the limit of 20) got 429"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(tt.h)
			defer srv.Close()
			r, err := ratecheck.Run(context.Background(), srv.URL, 1, check, nil, "ratecheck-test")
			if err != nil {
				t.Fatal(err)
			}
			if r.OK != tt.ok || (tt.problem != "" && !strings.Contains(strings.Join(r.Problems, "; "), tt.problem)) {
				t.Errorf("ok %v, problems %q; want ok %v and %q", r.OK, r.Problems, tt.ok, tt.problem)
			}
			if r.Below.Total == 0 || r.Above.Total == 0 || r.LoadResult == nil {
				t.Errorf("counts below %+v above %+v", r.Below, r.Above)
			}
		})
	}
}

func TestLimitText(t *testing.T) {
	if got := (&ratecheck.Result{Limit: 20, Limiters: 1, PerServer: 20}).LimitText(); got != "20" {
		t.Errorf("one server: %q", got)
	}
	if got := (&ratecheck.Result{Limit: 60, Limiters: 3, PerServer: 20}).LimitText(); got != "60 = 3 replicas × 20" {
		t.Errorf("three: %q", got)
	}
}
