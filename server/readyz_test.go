package server

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hal9-lab/hal9-lab/server/llm"
	"github.com/hal9-lab/hal9-lab/server/neuron"
	"github.com/hal9-lab/hal9-lab/server/store"
)

// pingCounter counts Ping calls.
type pingCounter struct {
	store.Store
	pings atomic.Int64
}

func (p *pingCounter) Ping(context.Context) error { p.pings.Add(1); return nil }

// TestReadyzCached: 100 calls of the public /readyz within a second, 50 of
// them at once, ping the database and Redis once; the admin listener's
// pings every time; a shutdown shows at once.
func TestReadyzCached(t *testing.T) {
	router, err := neuron.NewRouter(neuron.Options{Provider: llm.NewSimulated(llm.SimOptions{})})
	if err != nil {
		t.Fatal(err)
	}
	st := &pingCounter{}
	var redisPings atomic.Int64
	s := &Server{d: Deps{Store: st, Router: router, RedisHealth: func(context.Context) error { redisPings.Add(1); return nil }}}
	call := func(h http.HandlerFunc) int {
		rec := httptest.NewRecorder()
		h(rec, httptest.NewRequest("GET", "/readyz", nil))
		return rec.Code
	}
	public, admin := s.readyz(false), s.readyz(true)
	var wg sync.WaitGroup
	for range 50 {
		wg.Add(1)
		go func() { defer wg.Done(); call(public) }()
	}
	wg.Wait()
	for range 50 {
		if code := call(public); code != http.StatusOK {
			t.Fatalf("public /readyz: %d", code)
		}
	}
	if p, r := st.pings.Load(), redisPings.Load(); p != 1 || r != 1 {
		t.Fatalf("100 public /readyz calls pinged the database %d and Redis %d times, want once each", p, r)
	}
	call(admin)
	call(admin)
	if p := st.pings.Load(); p != 3 {
		t.Fatalf("two admin /readyz calls: %d pings in all, want 3 (the admin listener's answer is not cached)", p)
	}
	s.BeginShutdown()
	if code := call(public); code != http.StatusServiceUnavailable {
		t.Fatalf("public /readyz right after BeginShutdown: %d, want 503 (not the cached 200)", code)
	}
}

// TestReadyCacheExpires: an answer older than readyTTL is computed again.
func TestReadyCacheExpires(t *testing.T) {
	var c readyCache
	n := 0
	compute := func() (int, map[string]any) { n++; return http.StatusOK, map[string]any{"status": "ready"} }
	c.get(compute)
	c.get(compute)
	c.at = time.Now().Add(-readyTTL)
	c.get(compute)
	if n != 2 {
		t.Fatalf("computed %d times, want 2 (once, then once more when stale)", n)
	}
}
