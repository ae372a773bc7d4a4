package hal9

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"

	"github.com/hal9-lab/hal9-lab/lab/load"
	"github.com/hal9-lab/hal9-lab/lab/load/loadtest"
)

// cannedHAL9 serves the API the mix uses with the real response bodies of
// testdata/ (captured from hal9 serve), echoing what the checks compare
// (user names, layers, ids), without allocating per request: a benchmark
// then counts the workload's and the engine's costs alone.
func cannedHAL9(tb testing.TB) string {
	tb.Helper()
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			tb.Fatal(err)
		}
		return bytes.TrimSpace(b)
	}
	jsonH := []string{"Content-Type: application/json"}
	sigH := append(jsonH, "X-HAL9-Cache: miss", "X-HAL9-Cost-USD: 0.009057", "X-HAL9-Tokens: 1047")
	signal := map[string][]byte{}
	for _, l := range []string{"L1", "L2", "L3", "L4", "L5"} {
		body := bytes.Replace(read("signal.json"), []byte(`"layer":"L3"`), []byte(`"layer":"`+l+`"`), 1)
		signal[l] = loadtest.AppendResponse(nil, 200, sigH, body)
	}
	fixed := map[string][]byte{
		"GET /health":         loadtest.Response(200, `{"status":"ok"}`, jsonH...),
		"GET /api/v1/status":  loadtest.AppendResponse(nil, 200, jsonH, read("status.json")),
		"GET /api/v1/neurons": loadtest.AppendResponse(nil, 200, jsonH, read("neurons.json")),
		"GET /api/v1/metrics": loadtest.AppendResponse(nil, 200, jsonH, read("metrics.json")),
		"POST /api/v1/auth/api-keys": loadtest.Response(201,
			`{"api_key":{"id":"c77b357f-cc5c-4139-a2ef-4b3b00b7fb71","name":"k1","prefix":"hal9_avBLZ4","created_at":"2026-12-06T08:49:13.370017Z"},"key":"hal9_avBLZ41Aakeak6Z1re","note":"store the key now"}`, jsonH...),
	}
	notFound := loadtest.Response(404, `{"error":"not found"}`, jsonH...)
	var (
		userA    = []byte(`{"user":{"id":"520f8cb9-a6ae-4ec7-9b68-1b993d4909ae","username":"`)
		userB    = []byte(`","email":"u@lab.invalid","created_at":"2026-12-06T08:47:28.946998Z"}}`)
		tokA     = []byte(`{"access_token":"tok-`)
		tokB     = []byte(`","refresh_token":"ref","expires_in":900,"user":{"id":"520f8cb9-a6ae-4ec7-9b68-1b993d4909ae","username":"`)
		endLogin = []byte(`"}}`)
		neurA    = []byte(`{"id":"`)
		neurB    = []byte(`","layer":"L3","role":"design","state":"active","processed":1932,"failed":0,"avg_latency_ms":64.0,"breaker":"closed"}`)
	)
	return loadtest.Canned(tb, func(r loadtest.Request, buf []byte) []byte {
		path := r.Path
		switch {
		case string(r.Method) == "POST" && string(path) == "/api/v1/signals":
			if b := signal[string(jsonField(r.Body, "layer"))]; b != nil {
				return b
			}
		case string(r.Method) == "POST" && string(path) == "/api/v1/auth/register":
			return loadtest.AppendResponse(buf, 201, jsonH, userA, jsonField(r.Body, "username"), userB)
		case string(r.Method) == "POST" && string(path) == "/api/v1/auth/login":
			u := jsonField(r.Body, "username")
			return loadtest.AppendResponse(buf, 200, jsonH, tokA, u, tokB, u, endLogin)
		case string(path) == "/api/v1/auth/profile":
			_, u, _ := bytes.Cut(r.Header, []byte("Bearer tok-"))
			u, _, _ = bytes.Cut(u, []byte("\r\n"))
			return loadtest.AppendResponse(buf, 200, jsonH, userA, u, userB)
		case bytes.HasPrefix(path, []byte("/api/v1/neurons/")):
			return loadtest.AppendResponse(buf, 200, jsonH, neurA, path[len("/api/v1/neurons/"):], neurB)
		}
		k := append(append(append(buf[:0], r.Method...), ' '), path...)
		if b := fixed[string(k)]; b != nil {
			return b
		}
		return notFound
	})
}

// jsonField is the string value of "key" in a flat JSON object (the
// workload's request bodies), or nil.
func jsonField(b []byte, key string) []byte {
	i := bytes.Index(b, []byte(`"`+key+`":"`))
	if i < 0 {
		return nil
	}
	v := b[i+len(key)+4:]
	if j := bytes.IndexByte(v, '"'); j >= 0 {
		return v[:j]
	}
	return nil
}

// BenchmarkMixIteration is one iteration of the documented mix (without
// its async signals, which sleep while they poll) and of each operation
// alone, through the engine (load.Iterate) against canned real response
// bodies: the load generator's cost per iteration, per request (the
// process's CPU in cpu-µs/req, of which the canned server's is a small
// part; allocs/req) and the requests an iteration makes (reqs/op).
func BenchmarkMixIteration(b *testing.B) {
	mix := DefaultMix
	mix.AsyncSignal = 0
	for _, bc := range []struct {
		name string
		mix  Mix
	}{
		{"mix", mix},
		{"signal", Mix{Signal: 1}},
		{"status", Mix{Status: 1}},
		{"neurons", Mix{Neurons: 1}},
		{"auth", Mix{Auth: 1}},
		{"metrics", Mix{Metrics: 1}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			m := bc.mix
			w, err := New(Config{Kind: "hal9", Mix: &m})
			if err != nil {
				b.Fatal(err)
			}
			url := cannedHAL9(b)
			var m0, m1 runtime.MemStats
			var r0, r1 syscall.Rusage
			runtime.ReadMemStats(&m0)
			_ = syscall.Getrusage(syscall.RUSAGE_SELF, &r0)
			b.ReportAllocs()
			b.ResetTimer()
			sum, err := load.Iterate(context.Background(), load.Options{Target: url, Workload: w, RunID: "bench"}, b.N)
			b.StopTimer()
			_ = syscall.Getrusage(syscall.RUSAGE_SELF, &r1)
			runtime.ReadMemStats(&m1)
			if err != nil {
				b.Fatal(err)
			}
			if r := sum.Metrics[load.MetricChecks].Values["rate"]; r != 1 {
				b.Fatalf("checks passed %.3f: the canned responses do not fit the workload's checks", r)
			}
			reqs := sum.Metrics[load.MetricHTTPReqs].Values["count"]
			b.ReportMetric(reqs/float64(b.N), "reqs/op")
			cpu := r1.Utime.Nano() - r0.Utime.Nano() + r1.Stime.Nano() - r0.Stime.Nano()
			b.ReportMetric(float64(cpu)/reqs/1000, "cpu-µs/req")
			b.ReportMetric(float64(m1.Mallocs-m0.Mallocs)/reqs, "allocs/req")
		})
	}
}
