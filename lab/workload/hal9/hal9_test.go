package hal9

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hal9-lab/hal9-lab/lab/ledger"
	"github.com/hal9-lab/hal9-lab/lab/load"
)

// fakeServer answers with exactly the shapes of the server issue (issue
// 2) and counts what it billed, so the workload's checks and custom
// metrics can be compared with the server side.
type fakeServer struct {
	mu           sync.Mutex
	users        map[string]string // username → id
	tokens       map[string]string // token → username
	seen         map[string]bool   // layer|content → cached
	hits, misses int
	cost         float64
	tokensBilled int
	ops          map[string]int
	registerCode int                       // 201; the original's test expected 200
	signals      map[string]map[string]any // id → GET body (async signals)
	keys         int
}

func newFake() *fakeServer {
	return &fakeServer{users: map[string]string{}, tokens: map[string]string{}, seen: map[string]bool{},
		ops: map[string]int{}, registerCode: http.StatusCreated, signals: map[string]map[string]any{}}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func (f *fakeServer) user(name string) map[string]any {
	return map[string]any{"id": f.users[name], "username": name, "email": name + "@lab.invalid", "created_at": "2025-06-13T00:00:00Z"}
}

func (f *fakeServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ops[r.Method+" "+r.URL.Path]++
	authed := func() (string, bool) {
		tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		u, ok := f.tokens[tok]
		if !ok {
			writeJSON(w, 401, map[string]any{"error": map[string]string{"code": "unauthorized", "message": "no"}})
		}
		return u, ok
	}
	switch {
	case r.Method == "GET" && r.URL.Path == "/health":
		writeJSON(w, 200, map[string]string{"status": "ok"})
	case r.Method == "POST" && r.URL.Path == "/api/v1/auth/register":
		var req struct{ Username, Email, Password string }
		json.NewDecoder(r.Body).Decode(&req)
		if _, taken := f.users[req.Username]; taken {
			writeJSON(w, 409, map[string]any{"error": map[string]string{"code": "conflict", "message": "taken"}})
			return
		}
		f.users[req.Username] = fmt.Sprintf("u%d", len(f.users)+1)
		writeJSON(w, f.registerCode, map[string]any{"user": f.user(req.Username)})
	case r.Method == "POST" && r.URL.Path == "/api/v1/auth/login":
		var req struct{ Username, Password string }
		json.NewDecoder(r.Body).Decode(&req)
		if _, ok := f.users[req.Username]; !ok || req.Password != password {
			writeJSON(w, 401, map[string]any{"error": map[string]string{"code": "unauthorized", "message": "bad"}})
			return
		}
		tok := fmt.Sprintf("tok%d", len(f.tokens)+1)
		f.tokens[tok] = req.Username
		writeJSON(w, 200, map[string]any{"access_token": tok, "refresh_token": "r" + tok, "token_type": "Bearer",
			"expires_in": 900, "user": f.user(req.Username)})
	case r.Method == "GET" && r.URL.Path == "/api/v1/auth/profile":
		if u, ok := authed(); ok {
			writeJSON(w, 200, map[string]any{"user": f.user(u)})
		}
	case r.Method == "POST" && r.URL.Path == "/api/v1/signals":
		if _, ok := authed(); !ok {
			return
		}
		var req struct{ Content, Layer string }
		json.NewDecoder(r.Body).Decode(&req)
		top, _ := strconv.Atoi(strings.TrimPrefix(req.Layer, "L"))
		var trace []map[string]any
		cost, toks, hits, n := 0.0, 0, 0, 0
		for l := top; l >= 1; l-- {
			layer := "L" + strconv.Itoa(l)
			key := layer + "|" + req.Content
			hop := map[string]any{"neuron_id": layer + "-0", "layer": layer, "direction": "forward", "duration_ms": 1.5}
			n++
			if f.seen[key] {
				hits++
				f.hits++
				hop["cache"], hop["tier"], hop["tokens_in"], hop["tokens_out"], hop["cost_usd"] = "hit", "process", 0, 0, 0.0
			} else {
				f.seen[key] = true
				f.misses++
				c := 0.001 * float64(l)
				hop["cache"], hop["tokens_in"], hop["tokens_out"], hop["cost_usd"] = "miss", 10*l, 20*l, c
				cost += c
				toks += 30 * l
			}
			trace = append(trace, hop)
		}
		f.cost += cost
		f.tokensBilled += toks
		cache := "partial"
		if hits == n {
			cache = "hit"
		} else if hits == 0 {
			cache = "miss"
		}
		id := fmt.Sprintf("s%d", len(f.signals)+1)
		body := map[string]any{"signal_id": id, "layer": req.Layer, "neuron_id": req.Layer + "-0", "status": "processed",
			"output": "ok", "cache": cache, "trace": trace, "tokens_in": toks / 3, "tokens_out": toks - toks/3, "cost_usd": cost, "duration_ms": 3.0}
		f.signals[id] = body
		if r.URL.Query().Get("async") == "true" {
			writeJSON(w, 202, map[string]any{"signal_id": id, "status": "pending"})
			return
		}
		w.Header().Set("X-HAL9-Cache", cache)
		w.Header().Set("X-HAL9-Cost-USD", strconv.FormatFloat(cost, 'f', -1, 64))
		w.Header().Set("X-HAL9-Tokens", strconv.Itoa(toks))
		writeJSON(w, 200, body)
	case r.Method == "GET" && strings.HasPrefix(r.URL.Path, "/api/v1/signals/"):
		if _, ok := authed(); !ok {
			return
		}
		if b, ok := f.signals[strings.TrimPrefix(r.URL.Path, "/api/v1/signals/")]; ok {
			writeJSON(w, 200, b)
			return
		}
		writeJSON(w, 404, map[string]any{"error": map[string]string{"code": "not_found", "message": "no"}})
	case r.Method == "POST" && r.URL.Path == "/api/v1/auth/api-keys":
		if _, ok := authed(); !ok {
			return
		}
		f.keys++
		writeJSON(w, 201, map[string]any{"key": "hal9_k", "api_key": map[string]any{"id": fmt.Sprintf("k%d", f.keys), "prefix": "hal9_k"}})
	case r.Method == "GET" && r.URL.Path == "/api/v1/status":
		writeJSON(w, 200, map[string]any{"status": "ok", "neurons_total": 2})
	case r.Method == "GET" && r.URL.Path == "/api/v1/neurons":
		writeJSON(w, 200, map[string]any{"neurons": []map[string]any{{"id": "L1-0", "layer": "L1"}, {"id": "L2-0", "layer": "L2"}}, "count": 2})
	case r.Method == "GET" && strings.HasPrefix(r.URL.Path, "/api/v1/neurons/"):
		writeJSON(w, 200, map[string]any{"id": strings.TrimPrefix(r.URL.Path, "/api/v1/neurons/"), "layer": "L1"})
	case r.Method == "GET" && r.URL.Path == "/api/v1/metrics":
		writeJSON(w, 200, map[string]any{"signals": map[string]any{"processed": 1}})
	default:
		writeJSON(w, 404, map[string]any{"error": map[string]string{"code": "not_found", "message": r.URL.Path}})
	}
}

func run(t *testing.T, f *fakeServer, cfg Config, iterations int) *load.Result {
	t.Helper()
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	w, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	plan := &load.Plan{Name: "hal9", Scenarios: []load.Scenario{{Name: "s", Executor: load.ConstantArrivalRate,
		Rate: float64(iterations), Duration: time.Second, PreAllocatedVUs: 4}}}
	res, err := load.Run(context.Background(), plan, load.Options{Target: srv.URL, Workload: w, RunID: "t", Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestWorkloadAgainstDocumentedShapes(t *testing.T) {
	t.Parallel()
	f := newFake()
	res := run(t, f, Config{}, 300)
	s := res.Summary
	for _, c := range s.RootGroup.Checks {
		if c.Fails > 0 {
			t.Errorf("check %q failed %d times", c.Name, c.Fails)
		}
	}
	if len(s.RootGroup.Checks) < 10 {
		t.Errorf("only %d checks: %+v", len(s.RootGroup.Checks), s.RootGroup.Checks)
	}
	if v := s.Metrics["http_req_failed"].Values; v["passes"] != 0 {
		t.Errorf("failed requests: %v", v)
	}
	// the mix: 300 iterations, 40/20/20/15/5 with 4 of the 40 async and 1
	// of the 15 an API key (binomial: ±4σ)
	f.mu.Lock()
	defer f.mu.Unlock()
	want := map[string]float64{
		"POST /api/v1/signals": 120, "GET /api/v1/status": 60, "GET /api/v1/neurons": 60,
		"GET /api/v1/auth/profile": 42, "POST /api/v1/auth/api-keys": 3, "GET /api/v1/metrics": 15,
	}
	for op, n := range want {
		sd := math.Sqrt(300 * n / 300 * (1 - n/300))
		if got := float64(f.ops[op]); math.Abs(got-n) > 4*sd+1 {
			t.Errorf("%s: %v requests, want about %v", op, got, n)
		}
	}
	// every VU registered and logged in once, plus one per auth flow
	vus := int(s.Metrics["vus_max"].Values["max"])
	if got := f.ops["POST /api/v1/auth/register"]; got != vus+f.ops["GET /api/v1/auth/profile"] {
		t.Errorf("%d registers for %d VUs and %d auth flows", got, vus, f.ops["GET /api/v1/auth/profile"])
	}
	// client-side custom metrics equal what the server billed, exactly
	hit := s.Metrics[MetricCacheHit].Values
	if hit["passes"] != float64(f.hits) || hit["fails"] != float64(f.misses) {
		t.Errorf("hal9_cache_hit %v, server hits %d misses %d", hit, f.hits, f.misses)
	}
	if c := s.Metrics[MetricCost].Values["count"]; math.Abs(c-f.cost) > 1e-9 {
		t.Errorf("hal9_llm_cost_usd %v, server billed %v", c, f.cost)
	}
	if n := s.Metrics[MetricTokens].Values["count"]; n != float64(f.tokensBilled) {
		t.Errorf("hal9_llm_tokens %v, server billed %v", n, f.tokensBilled)
	}
	if f.hits == 0 {
		t.Error("the default catalogue produced no cache hits")
	}
	if s.Metrics["http_req_duration{op:signal}"] != nil {
		t.Error("sub-metrics appear only for thresholds")
	}
	// Signals carry their layer tag: one series per default layer, adding
	// up to the op's.
	layers, all := map[string]int64{}, int64(0)
	for _, o := range s.Hal9Lab.Ops {
		switch {
		case o.Op == OpSignal && o.Layer == "":
			all = o.Reqs
		case o.Op == OpSignal:
			layers[o.Layer] = o.Reqs
		}
	}
	if len(layers) != 3 || layers["L2"] == 0 || layers["L2"]+layers["L3"]+layers["L4"] != all || all == 0 {
		t.Errorf("signal ops: %d in all, by layer %v", all, layers)
	}
	if s.Metrics["http_reqs{layer:L3,op:signal}"] == nil {
		t.Error("no per-layer sub-metric in the k6-shaped summary")
	}
}

// Every acknowledged write is in the ledger, once, with its owner.
func TestLedgerRecordsEveryAcknowledgedWrite(t *testing.T) {
	t.Parallel()
	f := newFake()
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	w, err := New(Config{Mix: &Mix{Signal: 2, AsyncSignal: 2, Auth: 1, APIKey: 1}})
	if err != nil {
		t.Fatal(err)
	}
	var acks ledger.Memory
	w.SetLedger(&acks)
	plan := &load.Plan{Name: "hal9", Scenarios: []load.Scenario{{Name: "s", Executor: load.ConstantArrivalRate,
		Rate: 60, Duration: time.Second, PreAllocatedVUs: 3}}}
	if _, err := load.Run(context.Background(), plan, load.Options{Target: srv.URL, Workload: w, RunID: "t", Seed: 3}); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	count := map[string]int{}
	ids := map[string]bool{}
	for _, e := range acks.Entries {
		if err := e.Validate(); err != nil {
			t.Errorf("entry %+v: %v", e, err)
		}
		count[e.Kind]++
		if ids[e.Kind+e.ID] {
			t.Errorf("%s %s recorded twice", e.Kind, e.ID)
		}
		ids[e.Kind+e.ID] = true
		switch e.Kind {
		case ledger.KindSignal:
			if e.Status != 200 && e.Status != 202 || e.At == nil || !strings.HasPrefix(e.User, "lab_t_") {
				t.Errorf("signal entry %+v", e)
			}
		case ledger.KindUser:
			if f.users[e.Username] != e.ID {
				t.Errorf("user entry %+v: the server gave %s id %q", e, e.Username, f.users[e.Username])
			}
		}
	}
	if count[ledger.KindSignal] != len(f.signals) || count[ledger.KindUser] != len(f.users) || count[ledger.KindAPIKey] != f.keys {
		t.Errorf("ledger %v; the server acknowledged %d signals, %d users, %d keys", count, len(f.signals), len(f.users), f.keys)
	}
	if f.keys == 0 || count[ledger.KindSignal] == 0 || f.ops["GET /api/v1/signals/s1"]+f.ops["GET /api/v1/signals/s2"]+len(f.signals) == 0 {
		t.Errorf("the mix made no key or signal: %v", f.ops)
	}
}

// The original HAL9 load test expected 200 from register; the server
// answers 201. A server that answered 200 must fail our check.
func TestWorkloadCatchesWrongShapes(t *testing.T) {
	t.Parallel()
	f := newFake()
	f.registerCode = http.StatusOK
	res := run(t, f, Config{Mix: &Mix{Auth: 1}}, 20)
	var reg *load.Check
	for i, c := range res.Summary.RootGroup.Checks {
		if strings.HasPrefix(c.Name, "register") {
			reg = &res.Summary.RootGroup.Checks[i]
		}
	}
	if reg == nil || reg.Passes != 0 || reg.Fails == 0 {
		t.Fatalf("register check = %+v", reg)
	}
	if res.Summary.Hal9Lab.Scenarios["s"].Errors == 0 {
		t.Error("a VU that cannot log in should report iteration errors")
	}
}

// The catalogue's size and Zipf exponent set how often prompts repeat,
// hence the hit rate: one prompt always hits after the first; a billion
// equally likely prompts (almost) never repeat.
func TestCatalogueControlsHits(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		size   int
		s      float64
		lo, hi float64
	}{{1_000_000_000, 0, 0, 0}, {1, 1, 0.95, 1}, {20, 1.2, 0.5, 1}} {
		f := newFake()
		res := run(t, f, Config{Mix: &Mix{Signal: 1}, Catalogue: &Catalogue{SizePerLayer: c.size, ZipfS: &c.s}, Layers: []string{"L2"}}, 100)
		r := res.Summary.Metrics[MetricSignalCacheHit].Values["rate"]
		if r < c.lo || r > c.hi {
			t.Errorf("catalogue %d prompts, zipf_s %v: signal hit rate %v, want in [%v, %v]", c.size, c.s, r, c.lo, c.hi)
		}
	}
}

// The sampler's frequencies follow 1/k^s for exponents below, at and
// above 1 (math/rand's Zipf covers only s > 1), and s = 0 is uniform.
func TestZipfSampler(t *testing.T) {
	t.Parallel()
	const n, draws = 30, 300_000
	for _, s := range []float64{0, 0.6, 1, 1.5} {
		z := newZipf(n, s)
		rng := rand.New(rand.NewPCG(7, uint64(s*10)))
		counts := make([]float64, n+1)
		for range draws {
			k := z.sample(rng)
			if k < 1 || k > n {
				t.Fatalf("s=%v: sample %d outside 1..%d", s, k, n)
			}
			counts[k]++
		}
		var norm float64
		for k := 1; k <= n; k++ {
			norm += math.Pow(float64(k), -s)
		}
		for _, k := range []int{1, 2, 5, 30} {
			p := math.Pow(float64(k), -s) / norm
			want, sd := p*draws, math.Sqrt(draws*p*(1-p))
			if math.Abs(counts[k]-want) > 5*sd {
				t.Errorf("s=%v: k=%d drawn %v times, want %.0f ± %.0f", s, k, counts[k], want, 5*sd)
			}
		}
	}
	// A catalogue of a billion: O(1) memory, samples in range.
	z := newZipf(1_000_000_000, 1)
	rng := rand.New(rand.NewPCG(1, 1))
	for range 1000 {
		if k := z.sample(rng); k < 1 || k > 1_000_000_000 {
			t.Fatalf("sample %d out of range", k)
		}
	}
	if p := func(l string, k int) string { return string(appendPrompt(nil, 1, l, k)) }; p("L3", 42) != p("L3", 42) || p("L3", 42) == p("L2", 42) || p("L3", 42) == p("L3", 43) {
		t.Error("prompts must be the same for the same layer and k, and differ otherwise")
	}
}

func TestSharedUser(t *testing.T) {
	t.Parallel()
	f := newFake()
	res := run(t, f, Config{Mix: &Mix{Signal: 1, Status: 1}, SharedUser: true}, 40)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ops["POST /api/v1/auth/register"] != 1 || f.ops["POST /api/v1/auth/login"] != 1 {
		t.Errorf("shared user: %d registers, %d logins", f.ops["POST /api/v1/auth/register"], f.ops["POST /api/v1/auth/login"])
	}
	if res.Summary.Metrics["http_req_failed"].Values["passes"] != 0 {
		t.Error("requests failed")
	}
}

func TestDecodeErrors(t *testing.T) {
	t.Parallel()
	base := "name: x\nscenarios: {a: {executor: constant-vus, vus: 1, duration: 1s}}\nworkload:\n  kind: hal9\n"
	tests := []struct{ yaml, want string }{
		{"  mix: {signals: 3}\n", "w.yaml:5: workload.mix.signals: unknown key"},
		{"  repeat_ratio: 0.6\n", "w.yaml:5: workload.repeat_ratio: the hot-set model (repeat_ratio, hot_set, zipf_s) is replaced by a prompt catalogue with Zipf popularity, whose tail is the unique traffic: write catalogue: {size_per_layer: 10000, zipf_s: 1} instead"},
		{"  hot_set: 20\n", "w.yaml:5: workload.hot_set: the hot-set model"},
		{"  zipf_s: 1.2\n", "w.yaml:5: workload.zipf_s: the hot-set model"},
		{"  catalogue: {size_per_layer: 0}\n", "w.yaml:5: workload.catalogue: size_per_layer must be 1..1000000000, got 0 (omit it for the default 10000)"},
		{"  catalogue: {zipf_s: -1}\n", "w.yaml:5: workload.catalogue: zipf_s must be in 0..10"},
		{"  catalogue: {size: 3}\n", "w.yaml:5: workload.catalogue.size: unknown key (known keys here: size_per_layer, zipf_s)"},
		{"  layers: [L2, L9]\n", `w.yaml:5: workload.layers: "L9" is not a layer`},
		{"  think_time: soon\n", "w.yaml:5: workload.think_time"},
		{"  mix: {signal: 0}\n", "at least one of signal"},
		{"  mix: {signal: -1, status: 2}\n", "must not be negative"},
		{"  thinktime: 1s\n", "workload.thinktime: unknown key (known keys here: kind, mix, catalogue"},
	}
	for _, tt := range tests {
		p, err := load.ParseScenario("w.yaml", []byte(base+tt.yaml))
		if err != nil {
			t.Fatal(err)
		}
		_, err = Decode(p.Workload)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: err = %v, want %q", tt.yaml, err, tt.want)
		}
	}
	p, _ := load.ParseScenario("w.yaml", []byte(base+"  mix: {signal: 1}\n  think_time: 250ms\n"))
	c, err := Decode(p.Workload)
	if err != nil || c.Mix.Signal != 1 || c.Mix.Status != 0 || c.ThinkTime != 250*time.Millisecond || c.Catalogue.SizePerLayer != 10000 || *c.Catalogue.ZipfS != 1 {
		t.Errorf("decoded %+v, %v", c, err)
	}
}

// TestSetupProbesTarget: a dead target, or one that is not a HAL9 server,
// is a setup error naming the URL, before any load starts.
func TestSetupProbesTarget(t *testing.T) {
	t.Parallel()
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL
	dead.Close()
	notHAL9 := httptest.NewServer(http.NotFoundHandler())
	defer notHAL9.Close()
	for _, tt := range []struct{ target, want string }{
		{deadURL, "target unreachable: GET " + deadURL + "/health"},
		{notHAL9.URL, "target not healthy: GET " + notHAL9.URL + "/health answered 404"},
	} {
		p, err := load.ParseScenario("w.yaml", []byte("name: x\nscenarios: {a: {executor: constant-vus, vus: 1, duration: 1s}}\nworkload:\n  kind: hal9\n"))
		if err != nil {
			t.Fatal(err)
		}
		c, err := Decode(p.Workload)
		if err != nil {
			t.Fatal(err)
		}
		w, err := New(c)
		if err != nil {
			t.Fatal(err)
		}
		_, err = load.Run(context.Background(), p, load.Options{Target: tt.target, Workload: w})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err = %v, want %q", tt.target, err, tt.want)
		}
	}
}

// TestShippedWorkloads decodes the hal9 workload of every scenario the
// project ships or tests with (scenarios/, scenarios/bench/, lab/testdata/):
// load's own test parses the files but cannot decode this section.
func TestShippedWorkloads(t *testing.T) {
	shipped, _ := filepath.Glob("../../../scenarios/*.yaml")
	bench, _ := filepath.Glob("../../../scenarios/bench/*.yaml")
	shipped = append(shipped, bench...)
	testdata, _ := filepath.Glob("../../testdata/*.yaml")
	decoded := 0
	for i, f := range append(shipped, testdata...) {
		p, err := load.ReadScenarioFile(f)
		if err != nil {
			if i < len(shipped) { // every shipped file is a scenario
				t.Errorf("%v", err)
			}
			continue // lab/testdata also holds profiles and deliberately broken files
		}
		if p.Workload.Kind != "hal9" {
			continue
		}
		if _, err := Decode(p.Workload); err != nil {
			t.Errorf("%v", err)
		}
		decoded++
	}
	if decoded < 8 {
		t.Fatalf("decoded %d hal9 workloads: the scenario files are missing", decoded)
	}
}

// TestShapeChecks: the checks read the real response shapes field by
// field (fastjson): the documented body passes, a body that lacks a
// field, has it null or of another type, or is not JSON fails.
func TestShapeChecks(t *testing.T) {
	t.Parallel()
	good, err := os.ReadFile(filepath.Join("testdata", "signal.json"))
	if err != nil {
		t.Fatal(err)
	}
	v := &vu{w: &Workload{}}
	signal := func(edit func(map[string]any)) []byte {
		var m map[string]any
		if err := json.Unmarshal(good, &m); err != nil {
			t.Fatal(err)
		}
		edit(m)
		b, _ := json.Marshal(m)
		return b
	}
	hop := func(edit func(map[string]any)) func(map[string]any) {
		return func(m map[string]any) { edit(m["trace"].([]any)[0].(map[string]any)) }
	}
	for _, tt := range []struct {
		name          string
		body          []byte
		shape, traced bool
	}{
		{"documented", good, true, true},
		{"not json", []byte(`{"signal_id":`), false, false},
		{"no output", signal(func(m map[string]any) { delete(m, "output") }), false, true},
		{"null output", signal(func(m map[string]any) { m["output"] = nil }), false, true},
		{"other layer", signal(func(m map[string]any) { m["layer"] = "L4" }), false, true},
		{"cost as a string", signal(func(m map[string]any) { m["cost_usd"] = "0.1" }), false, true},
		{"no duration", signal(func(m map[string]any) { delete(m, "duration_ms") }), false, true},
		{"empty trace", signal(func(m map[string]any) { m["trace"] = []any{} }), false, true},
		{"trace not a list", signal(func(m map[string]any) { m["trace"] = map[string]any{} }), false, true},
		{"hop without tokens_in", signal(hop(func(h map[string]any) { delete(h, "tokens_in") })), true, false},
		{"hop with fractional tokens", signal(hop(func(h map[string]any) { h["tokens_out"] = 1.5 })), true, false},
		{"hop without neuron_id", signal(hop(func(h map[string]any) { h["neuron_id"] = "" })), true, false},
	} {
		o := v.object(tt.body)
		if got := signalShape(o, "L3"); got != tt.shape {
			t.Errorf("%s: shape %v, want %v", tt.name, got, tt.shape)
		}
		if o == nil {
			continue
		}
		it := &load.Iter{}
		if _, _, complete := v.traceSamples(it, o.GetArray("trace")); complete != tt.traced && len(o.GetArray("trace")) > 0 {
			t.Errorf("%s: trace complete %v, want %v", tt.name, complete, tt.traced)
		}
	}
	for _, tt := range []struct {
		body string
		ok   bool
	}{
		{`{"user":{"id":"u1","username":"ann","email":"a@x","created_at":"2025"}}`, true},
		{`{"user":{"id":"u1","username":"bob","email":"a@x","created_at":"2025"}}`, false},
		{`{"user":{"id":"","username":"ann","email":"a@x","created_at":"2025"}}`, false},
		{`{"user":{"id":"u1","username":"ann","email":"a@x"}}`, false},
		{`{"user":null}`, false},
		{`{"user":{"id":1,"username":"ann","email":"a@x","created_at":"2025"}}`, false},
	} {
		o := v.object([]byte(tt.body))
		if got := o != nil && userOK(o.Get("user"), "ann"); got != tt.ok {
			t.Errorf("user %s: %v, want %v", tt.body, got, tt.ok)
		}
	}
}

// TestRequestBodies: the bodies appended without encoding/json are the
// JSON it would write, strings escaped.
func TestRequestBodies(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"plain", `q"uote\back`, "tab\tnl\ncr\r", "ctl\x01\x1f", "é ü 漢字", "bad\xffutf8", ""} {
		var back string
		b := appendQuoted(nil, s)
		if err := json.Unmarshal(b, &back); err != nil || back != strings.ToValidUTF8(s, "\ufffd") {
			t.Errorf("%q: appended %s, read back %q (%v)", s, b, back, err)
		}
	}
	w, err := New(Config{Kind: "hal9"})
	if err != nil {
		t.Fatal(err)
	}
	w.zipf = newZipf(10, 1)
	v := &vu{w: w, rng: rand.New(rand.NewPCG(1, 2))}
	var body struct{ Content, Layer string }
	if err := json.Unmarshal(v.signalBody("L3"), &body); err != nil || body.Layer != "L3" || !strings.HasPrefix(body.Content, "L3 prompt ") {
		t.Errorf("signal body %s: %+v %v", v.body, body, err)
	}
}
