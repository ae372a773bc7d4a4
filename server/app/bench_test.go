package app

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hal9-lab/hal9-lab/lab/infra/infratest"
	"github.com/hal9-lab/hal9-lab/server"
	"github.com/hal9-lab/hal9-lab/server/auth"
	"github.com/hal9-lab/hal9-lab/server/cache"
	"github.com/hal9-lab/hal9-lab/server/neuron"
)

func TestMain(m *testing.M) { infratest.Main(m) }

// token registers and logs in through h.
func token(b *testing.B, h http.Handler) string {
	b.Helper()
	post := func(path, body string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("POST", path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		h.ServeHTTP(rec, req)
		return rec
	}
	if rec := post("/api/v1/auth/register", `{"username":"bench","email":"bench@example.com","password":"bench-password"}`); rec.Code != 201 {
		b.Fatalf("register %d %s", rec.Code, rec.Body)
	}
	rec := post("/api/v1/auth/login", `{"username":"bench","password":"bench-password"}`)
	var tr struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &tr); err != nil || tr.AccessToken == "" {
		b.Fatalf("login %d %s", rec.Code, rec.Body)
	}
	return tr.AccessToken
}

// roundTrip posts one signal through the handler and checks the status.
func roundTrip(b *testing.B, h http.Handler, tok string, body []byte, wantCache string) {
	if err := postSignal(h, tok, body, wantCache); err != nil {
		b.Fatal(err)
	}
}

// postSignal is roundTrip's request, for goroutines that may not Fatal.
func postSignal(h http.Handler, tok string, body []byte, wantCache string) error {
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("POST", "/api/v1/signals", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+tok)
	h.ServeHTTP(rec, req)
	if rec.Code != 200 || (wantCache != "" && rec.Header().Get("X-HAL9-Cache") != wantCache) {
		return fmt.Errorf("signal: %d %s %s", rec.Code, rec.Header().Get("X-HAL9-Cache"), rec.Body)
	}
	return nil
}

// BenchmarkSignalCachedRoundTrip: POST /api/v1/signals through the whole
// handler (middleware, auth, decode, three cached hops, the durable SQLite
// write of the signal, its hops and memories, the JSON answer). "app" is
// the server as hal9 serve wires it; labels=on and labels=off are the same
// handler built twice from the app's store and router, with and without
// the pprof labels (route, layer) that split the CPU profile per route:
// their ratio in one run is what the labels cost.
func BenchmarkSignalCachedRoundTrip(b *testing.B) {
	app := openApp(b, nil)
	run := func(b *testing.B, h http.Handler, user string) {
		tok := tokenNamed(b, h, user)
		// Each sub-benchmark fills its own entry: L1's TTL is 30 s, less
		// than the three of them may take on a busy machine.
		body := []byte(`{"content":"benchmark the cached path (` + user + `)","layer":"L3"}`)
		roundTrip(b, h, tok, body, "")
		b.ReportAllocs()
		b.ResetTimer()
		for b.Loop() {
			roundTrip(b, h, tok, body, "hit")
		}
	}
	b.Run("app", func(b *testing.B) { run(b, app.HTTP.Handler(), "bench") })
	for _, off := range []bool{false, true} {
		name := map[bool]string{false: "labels=on", true: "labels=off"}[off]
		b.Run(name, func(b *testing.B) {
			reg := prometheus.NewRegistry()
			authn, err := auth.NewService(app.Store, auth.Options{Secret: []byte(strings.Repeat("k", 32)), BcryptCost: 4}, reg)
			if err != nil {
				b.Fatal(err)
			}
			srv, err := server.New(server.Deps{Store: app.Store, Auth: authn, Router: app.Router, Registry: reg, NoProfileLabels: off})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { srv.DrainAsync(context.Background()) })
			run(b, srv.Handler(), "bench_"+strings.TrimPrefix(name, "labels="))
		})
	}
}

// BenchmarkSignalCachedRoundTripParallel: the same round trip from 64
// goroutines at once, as a loaded server sees it: their signal saves share
// group commits (one transaction and one WAL sync per batch), so the time
// per signal falls well below the sequential benchmark's, which is one
// durable commit each.
func BenchmarkSignalCachedRoundTripParallel(b *testing.B) {
	app := openApp(b, nil)
	h := app.HTTP.Handler()
	tok := token(b, h)
	body := []byte(`{"content":"benchmark the cached path","layer":"L3"}`)
	roundTrip(b, h, tok, body, "miss")
	b.ReportAllocs()
	b.SetParallelism(32) // × GOMAXPROCS goroutines
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := postSignal(h, tok, body, "hit"); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkSignalTiers: the same round trip (an L3 signal, three hops)
// answered by the process tier, by Redis, and by the (simulated, zero
// latency) LLM on a miss. The Redis case uses a cache of only the Redis
// tier, so every hop reads Redis.
func BenchmarkSignalTiers(b *testing.B) {
	app := openApp(b, nil)
	cm := cache.NewMetrics(prometheus.NewRegistry())
	proc, err := cache.NewProcess(cache.ProcessOptions{}, cm)
	if err != nil {
		b.Fatal(err)
	}
	cases := []struct {
		name  string
		tiers func(b *testing.B) []cache.Tier
		miss  bool
	}{
		{"process_hit", func(*testing.B) []cache.Tier { return []cache.Tier{proc} }, false},
		{"redis_hit", func(b *testing.B) []cache.Tier {
			r, err := cache.NewRedis(context.Background(), infratest.RedisURL(b), cache.RedisOptions{}, cm)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { r.Close() })
			return []cache.Tier{r}
		}, false},
		{"miss", func(*testing.B) []cache.Tier { return []cache.Tier{proc} }, true},
	}
	for i, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			layered := cache.NewLayered(cm, c.tiers(b)...)
			reg := prometheus.NewRegistry()
			router, err := neuron.NewRouter(neuron.Options{Provider: app.Guard, Cache: layeredCache{layered}, Key: cache.LLMKey,
				TTLs: cache.DefaultTTLs(), Model: app.cfg.LLMModel})
			if err != nil {
				b.Fatal(err)
			}
			authn, err := auth.NewService(app.Store, auth.Options{Secret: []byte(strings.Repeat("k", 32)), BcryptCost: 4}, reg)
			if err != nil {
				b.Fatal(err)
			}
			srv, err := server.New(server.Deps{Store: app.Store, Auth: authn, Router: router, Registry: reg})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { srv.DrainAsync(context.Background()) })
			h := srv.Handler()
			tok := tokenNamed(b, h, fmt.Sprintf("tiers%d", i))
			body := []byte(`{"content":"benchmark the tiers","layer":"L3"}`)
			want := "hit"
			if c.miss {
				want = "miss"
			} else {
				roundTrip(b, h, tok, body, "")
			}
			b.ReportAllocs()
			n := 0
			for b.Loop() {
				if c.miss {
					n++
					body = fmt.Appendf(body[:0], `{"content":"benchmark miss %d %d","layer":"L3"}`, n, time.Now().UnixNano())
				}
				roundTrip(b, h, tok, body, want)
			}
		})
	}
}

func tokenNamed(b *testing.B, h http.Handler, name string) string {
	b.Helper()
	post := func(path, body string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("POST", path, strings.NewReader(body))
		h.ServeHTTP(rec, req)
		return rec
	}
	post("/api/v1/auth/register", fmt.Sprintf(`{"username":%q,"email":"%s@example.com","password":"bench-password"}`, name, name))
	rec := post("/api/v1/auth/login", fmt.Sprintf(`{"username":%q,"password":"bench-password"}`, name))
	var tr struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &tr); err != nil || tr.AccessToken == "" {
		b.Fatalf("login %d %s", rec.Code, rec.Body)
	}
	return tr.AccessToken
}
