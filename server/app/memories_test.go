package app

import (
	"net/http"
	"testing"
)

// TestMemorySearchIsPerUser reproduces the leak found in review: mallory
// searching for the words of alice's signal must not see alice's memories,
// neither from the store nor from the search cache alice's query filled.
func TestMemorySearchIsPerUser(t *testing.T) {
	a := startApp(t, nil)
	alice, _ := a.userNamed("alice")
	mallory, _ := a.userNamed("mallory")
	a.signal(alice, "quarterly zanzibar acquisition secret", "L2")

	search := func(tok string) resp {
		t.Helper()
		r := a.do("GET", "/api/v1/memories/search?q=zanzibar", nil, bearer(tok)...)
		if r.Status != http.StatusOK {
			t.Fatalf("search: %d %s", r.Status, r.Body)
		}
		return r
	}
	// alice first, so that her result is in the search cache.
	if n, _ := search(alice).JSON["count"].(float64); n < 1 {
		t.Fatalf("alice does not find her own memory: %s", search(alice).Body)
	}
	if r := search(mallory); r.JSON["count"].(float64) != 0 {
		t.Fatalf("mallory sees alice's memories: %s", r.Body)
	}
}

// TestSignalRecordCacheAside: under the default aside strategy a GET that
// missed the record cache fills it, so the second GET is a record hit.
func TestSignalRecordCacheAside(t *testing.T) {
	a := startApp(t, nil) // CacheStrategy "aside" by default
	if a.app.cfg.CacheStrategy != "aside" {
		t.Fatalf("default strategy %q, want aside", a.app.cfg.CacheStrategy)
	}
	tok, _ := a.user()
	id := a.signal(tok, "cache me as a record", "L1").str("signal_id")
	hits := func() float64 {
		return sum(a.scrape(), "hal9_cache_requests_total", map[string]string{"layer": "record", "result": "hit"})
	}
	for i := range 2 {
		if r := a.do("GET", "/api/v1/signals/"+id, nil, bearer(tok)...); r.Status != http.StatusOK || r.str("status") != "processed" {
			t.Fatalf("GET %d: %d %s", i, r.Status, r.Body)
		}
		if i == 0 && hits() != 0 {
			t.Fatalf("first GET was a record hit; aside invalidates on save")
		}
	}
	if h := hits(); h < 1 {
		t.Fatalf("second GET: record hits = %v, want ≥ 1 (the first GET must fill the cache)", h)
	}
}
