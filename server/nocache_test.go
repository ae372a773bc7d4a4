package server

import (
	"net/http/httptest"
	"testing"
)

func TestNoCache(t *testing.T) {
	for v, want := range map[string]bool{"": false, "no-cache": true, "max-age=0, No-Cache": true, "no-store": true, "max-age=10": false} {
		r := httptest.NewRequest("GET", "/", nil)
		if v != "" {
			r.Header.Set("Cache-Control", v)
		}
		if got := noCache(r); got != want {
			t.Errorf("Cache-Control %q: %v, want %v", v, got, want)
		}
	}
}

// A production build never acknowledges before the store write: the
// lossy branch is a constant false outside `-tags lossytest`.
func TestNotLossy(t *testing.T) {
	if lossyAck {
		t.Fatal("this test binary was built with -tags lossytest")
	}
}
