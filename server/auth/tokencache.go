package auth

import (
	"sync"
	"time"
)

// maxVerified bounds the verified-token cache.
const maxVerified = 50_000

// tokenCache remembers access tokens that passed every check, until they
// expire.
type tokenCache struct {
	mu sync.RWMutex
	m  map[string]verifiedToken
}

type verifiedToken struct {
	p       Principal
	expires time.Time
}

func (c *tokenCache) get(tok string, now time.Time) (Principal, bool) {
	c.mu.RLock()
	v, ok := c.m[tok]
	c.mu.RUnlock()
	if !ok || !now.Before(v.expires) {
		return Principal{}, false
	}
	return v.p, true
}

func (c *tokenCache) put(tok string, p Principal, expires, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]verifiedToken{}
	}
	if len(c.m) >= maxVerified {
		// Evict a tenth, in the map's random order: a put stays O(1)
		// amortised. (Keeping the unexpired ones made every put scan the
		// whole map once more than the bound's tokens were live: 15 % of
		// the server's CPU in the hour-long soak.) An evicted token is
		// verified again on its next use.
		for k := range c.m {
			if len(c.m) < maxVerified*9/10 {
				break
			}
			delete(c.m, k)
		}
	}
	c.m[tok] = verifiedToken{p, expires}
}
