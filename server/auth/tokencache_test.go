package auth

import (
	"strconv"
	"testing"
	"time"
)

// TestTokenCacheBound: past maxVerified live tokens the cache evicts a
// tenth at once (not one per put), keeps the newest token, and never grows
// past its bound.
func TestTokenCacheBound(t *testing.T) {
	var c tokenCache
	now := time.Now()
	exp := now.Add(15 * time.Minute) // none expires during the test
	for i := range maxVerified + 10 {
		c.put(strconv.Itoa(i), Principal{}, exp, now)
		if len(c.m) > maxVerified {
			t.Fatalf("after %d puts the cache holds %d tokens, over its bound %d", i+1, len(c.m), maxVerified)
		}
	}
	if want := maxVerified*9/10 + 9; len(c.m) != want { // evicted below 90 %, then the 10 puts past the bound
		t.Errorf("holds %d tokens after filling up, want %d (a tenth evicted at once)", len(c.m), want)
	}
	if _, ok := c.get(strconv.Itoa(maxVerified+9), now); !ok {
		t.Error("the newest token was evicted")
	}
}

// BenchmarkTokenCachePutFull is a put into a full cache of live tokens.
func BenchmarkTokenCachePutFull(b *testing.B) {
	var c tokenCache
	now := time.Now()
	exp := now.Add(time.Hour)
	for i := range maxVerified {
		c.put(strconv.Itoa(i), Principal{}, exp, now)
	}
	b.ResetTimer()
	for i := range b.N {
		c.put("new"+strconv.Itoa(i), Principal{}, exp, now)
	}
}
