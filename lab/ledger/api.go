package ledger

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
)

// API reads entries back through a HAL9 server's API as their owners: it
// logs each owner in (Password gives the password), then asks for each
// signal (GET /api/v1/signals/{id} with Cache-Control: no-cache, which
// makes the server skip its record cache), the owner's profile and API
// keys. This checks visibility, not durability: a server that kept a
// write only in memory would pass it. Against a database the lab holds,
// use DB.
type API struct {
	Target   string
	Password func(username string) string
	Client   *http.Client
	// Workers bound the owners read at once (default 8).
	Workers int

	mu     sync.Mutex
	tokens map[string]string
}

var _ Lookup = (*API)(nil)

// Describe implements Lookup.
func (a *API) Describe() (string, string) { return "api", "visibility" }

// Find implements Lookup: per owner, in parallel.
func (a *API) Find(ctx context.Context, kind string, entries []Entry) (map[string][]string, error) {
	if a.Client == nil {
		a.Client = &http.Client{Timeout: 30 * time.Second}
	}
	workers := a.Workers
	if workers <= 0 {
		workers = 8
	}
	byOwner := map[string][]Entry{}
	for _, e := range entries {
		byOwner[e.Owner()] = append(byOwner[e.Owner()], e)
	}
	out := map[string][]string{}
	var mu sync.Mutex
	found := func(id, owner string) {
		mu.Lock()
		out[id] = append(out[id], owner)
		mu.Unlock()
	}
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(workers)
	for owner, es := range byOwner {
		g.Go(func() error {
			tok, err := a.token(ctx, owner)
			if err != nil {
				if err == errNoSuchUser {
					return nil // every entry of this owner is lost
				}
				return err
			}
			switch kind {
			case KindSignal:
				for _, e := range es {
					st, _, err := a.do(ctx, http.MethodGet, "/api/v1/signals/"+e.ID, tok, nil)
					if err != nil {
						return err
					}
					switch st {
					case http.StatusOK:
						found(e.ID, owner)
					case http.StatusNotFound:
					default:
						return fmt.Errorf("GET /api/v1/signals/%s as %s: status %d", e.ID, owner, st)
					}
				}
			case KindUser:
				st, body, err := a.do(ctx, http.MethodGet, "/api/v1/auth/profile", tok, nil)
				if err != nil {
					return err
				}
				var p struct {
					User struct {
						ID string `json:"id"`
					} `json:"user"`
				}
				if st == http.StatusOK && json.Unmarshal(body, &p) == nil {
					for _, e := range es {
						if e.ID == p.User.ID {
							found(e.ID, owner)
						}
					}
				}
			case KindAPIKey:
				st, body, err := a.do(ctx, http.MethodGet, "/api/v1/auth/api-keys", tok, nil)
				if err != nil {
					return err
				}
				if st != http.StatusOK {
					return fmt.Errorf("GET /api/v1/auth/api-keys as %s: status %d", owner, st)
				}
				var l struct {
					Keys []struct {
						ID string `json:"id"`
					} `json:"api_keys"`
				}
				if err := json.Unmarshal(body, &l); err != nil {
					return fmt.Errorf("GET /api/v1/auth/api-keys as %s: %w", owner, err)
				}
				have := map[string]bool{}
				for _, k := range l.Keys {
					have[k.ID] = true
				}
				for _, e := range es {
					if have[e.ID] {
						found(e.ID, owner)
					}
				}
			default:
				return fmt.Errorf("unknown kind %q", kind)
			}
			return nil
		})
	}
	return out, g.Wait()
}

var errNoSuchUser = fmt.Errorf("no such user")

// token logs owner in once.
func (a *API) token(ctx context.Context, owner string) (string, error) {
	a.mu.Lock()
	t, ok := a.tokens[owner]
	a.mu.Unlock()
	if ok {
		return t, nil
	}
	body, _ := json.Marshal(map[string]string{"username": owner, "password": a.Password(owner)})
	st, resp, err := a.do(ctx, http.MethodPost, "/api/v1/auth/login", "", body)
	if err != nil {
		return "", err
	}
	if st == http.StatusUnauthorized {
		return "", errNoSuchUser
	}
	var tr struct {
		AccessToken string `json:"access_token"`
	}
	if st != http.StatusOK || json.Unmarshal(resp, &tr) != nil || tr.AccessToken == "" {
		return "", fmt.Errorf("log in as %s to read its entries back: status %d: %s", owner, st, clip(resp))
	}
	a.mu.Lock()
	if a.tokens == nil {
		a.tokens = map[string]string{}
	}
	a.tokens[owner] = tr.AccessToken
	a.mu.Unlock()
	return tr.AccessToken, nil
}

// do sends one request, retrying 429 and 503 after their Retry-After (at
// most 10 times), so a rate-limited server slows the check down rather
// than failing it.
func (a *API) do(ctx context.Context, method, path, token string, body []byte) (int, []byte, error) {
	for attempt := 0; ; attempt++ {
		req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(a.Target, "/")+path, bytes.NewReader(body))
		if err != nil {
			return 0, nil, err
		}
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		// The server reads records around its cache for the owner.
		req.Header.Set("Cache-Control", "no-cache")
		res, err := a.Client.Do(req)
		if err != nil {
			return 0, nil, fmt.Errorf("%s %s: %w", method, path, err)
		}
		b, _ := io.ReadAll(io.LimitReader(res.Body, 1<<20))
		res.Body.Close()
		if (res.StatusCode == http.StatusTooManyRequests || res.StatusCode == http.StatusServiceUnavailable) && attempt < 10 {
			wait := time.Second
			if s, err := strconv.Atoi(res.Header.Get("Retry-After")); err == nil && s > 0 {
				wait = time.Duration(min(s, 10)) * time.Second
			}
			select {
			case <-ctx.Done():
				return 0, nil, ctx.Err()
			case <-time.After(wait):
			}
			continue
		}
		return res.StatusCode, b, nil
	}
}

func clip(b []byte) string {
	if len(b) > 200 {
		b = b[:200]
	}
	return string(b)
}
