// Package hal9 is the HAL9 traffic mix of seed 002 as a load workload:
// 40 % signal submissions (layers L2–L4; 36 synchronous, 4 with
// ?async=true), 20 % status, 20 % neuron queries (list, then one), 15 %
// auth flows (14 register → login → profile, 1 API-key creation) and 5 %
// metrics, with checks against the server's real response shapes and
// custom metrics read from its X-HAL9-* headers. Every write the server
// acknowledges goes to an acknowledgement ledger when one is set
// (SetLedger, acks.go).
package hal9

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fastjson"

	"github.com/hal9-lab/hal9-lab/lab/ledger"
	"github.com/hal9-lab/hal9-lab/lab/load"
	"github.com/hal9-lab/hal9-lab/lab/workload/internal/section"
)

// Config is the workload section of a scenario file (kind: hal9).
type Config struct {
	Kind string `yaml:"kind"`
	// Mix weights the operations; when mix is given, operations it leaves
	// out get 0. Default: seed 002's 40/20/20/15/5, with 4 of the 40
	// signals async and 1 of the 15 auth flows an API-key creation.
	Mix *Mix `yaml:"mix"`
	// Catalogue is the popularity model of signal contents (catalogue.go).
	Catalogue *Catalogue `yaml:"catalogue"`
	// RepeatRatio, HotSet and ZipfS were the older model (a Zipf hot set
	// plus unique contents); they are refused with a message that says
	// what to write instead.
	RepeatRatio *float64 `yaml:"repeat_ratio"`
	HotSet      int      `yaml:"hot_set"`
	ZipfS       *float64 `yaml:"zipf_s"`
	// ThinkTime is slept at the end of each iteration (the original test
	// used 1 s). Leave it 0 for arrival-rate scenarios.
	ThinkTime time.Duration `yaml:"think_time"`
	// Layers are the entry layers of signals, chosen uniformly (default
	// L2, L3, L4).
	Layers []string `yaml:"layers"`
	// SharedUser makes every VU use one user, logged in once in setup:
	// one rate-limit identity for the whole test (the ratelimit scenario).
	SharedUser bool `yaml:"shared_user"`
}

// Mix are the operation weights (any scale: 40/20/20/15/5 or 0.4/…).
type Mix struct {
	Signal  float64 `yaml:"signal"`
	Status  float64 `yaml:"status"`
	Neurons float64 `yaml:"neurons"`
	Auth    float64 `yaml:"auth"`
	Metrics float64 `yaml:"metrics"`
	// AsyncSignal: POST /api/v1/signals?async=true (202), then GET the
	// signal until it is done. APIKey: POST /api/v1/auth/api-keys (201).
	AsyncSignal float64 `yaml:"async_signal"`
	APIKey      float64 `yaml:"api_key"`
}

// weights in the order of ops.
func (m *Mix) weights() [nOps]float64 {
	return [nOps]float64{m.Signal, m.Status, m.Neurons, m.Auth, m.Metrics, m.AsyncSignal, m.APIKey}
}

// DefaultMix is seed 002's traffic mix (40/20/20/15/5), with small shares
// of async signals and API keys so every kind of acknowledged write occurs.
var DefaultMix = Mix{Signal: 36, AsyncSignal: 4, Status: 20, Neurons: 20, Auth: 14, APIKey: 1, Metrics: 5}

var validLayers = map[string]bool{"L1": true, "L2": true, "L3": true, "L4": true, "L5": true}

// Decode reads and validates the workload section of a scenario file.
func Decode(spec load.WorkloadSpec) (Config, error) {
	return section.Decode[Config](spec)
}

// Normalize validates the config and fills its defaults; errors name the
// file and line of the offending key.
func (c *Config) Normalize(pos section.Pos) error {
	bad := func(key, format string, a ...any) error {
		return fmt.Errorf("%s: workload.%s: %s", pos.At(key), key, fmt.Sprintf(format, a...))
	}
	if c.Mix == nil {
		m := DefaultMix
		c.Mix = &m
	}
	m := c.Mix
	total := 0.0
	for _, w := range m.weights() {
		if w < 0 {
			return bad("mix", "weights must not be negative")
		}
		total += w
	}
	if total <= 0 {
		return bad("mix", "at least one of signal, async_signal, status, neurons, auth, api_key, metrics must be positive")
	}
	for _, old := range []string{"repeat_ratio", "hot_set", "zipf_s"} {
		if pos.Has(old) || (old == "repeat_ratio" && c.RepeatRatio != nil) || (old == "hot_set" && c.HotSet != 0) || (old == "zipf_s" && c.ZipfS != nil) {
			return bad(old, "the hot-set model (repeat_ratio, hot_set, zipf_s) is replaced by a prompt catalogue with Zipf popularity, whose tail is the unique traffic: "+
				"write catalogue: {size_per_layer: %d, zipf_s: %g} instead (a larger catalogue or a smaller zipf_s repeats less; see docs/load.md)", DefaultCatalogueSize, DefaultZipfS)
		}
	}
	if c.Catalogue == nil {
		c.Catalogue = &Catalogue{}
	}
	cat := c.Catalogue
	if cat.SizePerLayer == 0 && !pos.HasPath("catalogue", "size_per_layer") {
		cat.SizePerLayer = DefaultCatalogueSize
	}
	if cat.SizePerLayer < 1 || cat.SizePerLayer > maxCatalogueSize {
		return bad("catalogue", "size_per_layer must be 1..%d, got %d (omit it for the default %d)", maxCatalogueSize, cat.SizePerLayer, DefaultCatalogueSize)
	}
	if cat.ZipfS == nil {
		z := DefaultZipfS
		cat.ZipfS = &z
	}
	if z := *cat.ZipfS; z < 0 || z > 10 || math.IsNaN(z) {
		return bad("catalogue", "zipf_s must be in 0..10 (0: all prompts equally likely; 1: web-like popularity), got %v", z)
	}
	if c.ThinkTime < 0 {
		return bad("think_time", "must not be negative")
	}
	if len(c.Layers) == 0 {
		c.Layers = []string{"L2", "L3", "L4"}
	}
	for _, l := range c.Layers {
		if !validLayers[l] {
			return bad("layers", "%q is not a layer; use L1..L5", l)
		}
	}
	return nil
}

// Workload implements load.Workload.
type Workload struct {
	cfg     Config
	cum     [nOps]float64 // cumulative mix weights
	runID   string
	seed    int64
	zipf    *zipf // the catalogue's popularity (read-only, shared by VUs)
	metrics struct {
		cacheHit, signalHit, cost, tokens *load.Metric
	}
	shared struct {
		token, user string
	}
	acks ledger.Recorder // nil: no ledger
}

// The operations, also the values of the "op" tag.
const (
	OpSignal  = "signal"
	OpStatus  = "status"
	OpNeurons = "neurons"
	OpAuth    = "auth"
	OpMetrics = "metrics"
	OpSetup   = "setup" // each VU's own register + login
	// OpAsyncSignal and OpAPIKey: see acks.go.
	OpAsyncSignal = "async_signal"
	OpAPIKey      = "api_key"
)

const nOps = 7

var ops = [nOps]string{OpSignal, OpStatus, OpNeurons, OpAuth, OpMetrics, OpAsyncSignal, OpAPIKey}

// Custom metric names. hal9_cache_hit counts one sample per forward hop of
// each signal's trace (1 when the hop's cache is "hit", at any tier or
// coalesced in flight; 0 when "miss"), so its rate is hits / (hits +
// misses) over LLM-cached hops: the server's per-layer cache_hit_rate of
// GET /api/v1/metrics, and, with Prometheus, the hits over hits+misses of
// hal9_cache_requests_total counted once per hop (not once per tier
// looked at). hal9_signal_cache_hit counts one sample per signal
// response: 1 when X-HAL9-Cache is "hit" (every hop hit), 0 for "miss"
// and "partial". hal9_llm_cost_usd and hal9_llm_tokens add the
// X-HAL9-Cost-USD and X-HAL9-Tokens headers of every signal response
// (failed ones too: their hops were billed), which is what the LLM
// billed: the increase of hal9_llm_cost_dollars_total and
// hal9_llm_tokens_total.
const (
	MetricCacheHit       = "hal9_cache_hit"
	MetricSignalCacheHit = "hal9_signal_cache_hit"
	MetricCost           = "hal9_llm_cost_usd"
	MetricTokens         = "hal9_llm_tokens"
)

// New builds the workload.
func New(cfg Config) (*Workload, error) {
	if err := cfg.Normalize(section.Pos{File: "workload"}); err != nil {
		return nil, err
	}
	w := &Workload{cfg: cfg}
	acc := 0.0
	for i, v := range cfg.Mix.weights() {
		acc += v
		w.cum[i] = acc
	}
	return w, nil
}

// Setup registers the custom metrics, builds the hot set, and logs the
// shared user in when SharedUser is set.
func (w *Workload) Setup(ctx context.Context, env *load.Env) error {
	var err error
	reg := func(name string, t load.MetricType) *load.Metric {
		m, e := env.Metrics.New(name, t, load.Default)
		if e != nil && err == nil {
			err = e
		}
		return m
	}
	w.metrics.cacheHit = reg(MetricCacheHit, load.Rate)
	w.metrics.signalHit = reg(MetricSignalCacheHit, load.Rate)
	w.metrics.cost = reg(MetricCost, load.Counter)
	w.metrics.tokens = reg(MetricTokens, load.Counter)
	if err != nil {
		return err
	}
	// An unreachable or non-HAL9 target is a setup error (exit 1), not a
	// run of failed requests.
	if err := env.Probe(ctx, "/health", true); err != nil {
		return err
	}
	w.runID, w.seed = sanitize(env.RunID), env.Seed
	// The catalogue is the same in every run with the same seed, so caches
	// warmed by one run are hit by the next one (as production's are).
	w.zipf = newZipf(w.cfg.Catalogue.SizePerLayer, *w.cfg.Catalogue.ZipfS)
	if w.cfg.SharedUser {
		user := "lab_" + w.runID + "_shared"
		tok, err := w.setupUser(ctx, env.HTTP, env.Target, user)
		if err != nil {
			return fmt.Errorf("shared user: %w", err)
		}
		w.shared.token, w.shared.user = tok, user
	}
	return nil
}

func sanitize(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' {
			b.WriteRune(r)
		}
	}
	if b.Len() > 20 {
		return b.String()[:20]
	}
	return b.String()
}

// Password is every lab user's password (the ledger check logs users in
// with it to read their entries back).
const Password = "lab-password-8+"

const password = Password

// setupUser registers and logs in a user without recording samples.
func (w *Workload) setupUser(ctx context.Context, c *http.Client, target, user string) (string, error) {
	body, _ := json.Marshal(map[string]string{"username": user, "email": user + "@lab.invalid", "password": password})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(target, "/")+"/api/v1/auth/register", strings.NewReader(string(body)))
	req.Header.Set("Content-Type", "application/json")
	res, err := c.Do(req)
	if err != nil {
		return "", fmt.Errorf("register: %w", err)
	}
	if res.StatusCode != http.StatusCreated && res.StatusCode != http.StatusConflict {
		res.Body.Close()
		return "", fmt.Errorf("register: status %d, want 201", res.StatusCode)
	}
	if res.StatusCode == http.StatusCreated {
		var out struct {
			User *userJSON `json:"user"`
		}
		if json.NewDecoder(res.Body).Decode(&out) == nil && out.User != nil {
			w.ackUser([]byte(out.User.ID), user)
		}
	}
	res.Body.Close()
	body, _ = json.Marshal(map[string]string{"username": user, "password": password})
	req, _ = http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(target, "/")+"/api/v1/auth/login", strings.NewReader(string(body)))
	req.Header.Set("Content-Type", "application/json")
	res, err = c.Do(req)
	if err != nil {
		return "", fmt.Errorf("login: %w", err)
	}
	defer res.Body.Close()
	var t tokenResponse
	if res.StatusCode != http.StatusOK || json.NewDecoder(res.Body).Decode(&t) != nil || t.AccessToken == "" {
		return "", fmt.Errorf("login: status %d, want 200 with access_token", res.StatusCode)
	}
	return t.AccessToken, nil
}

var (
	_ load.Workload = (*Workload)(nil)
	_ load.VU       = (*vu)(nil)
)

// NewVU implements load.Workload.
func (w *Workload) NewVU(id int) (load.VU, error) {
	v := &vu{w: w, id: id, rng: rand.New(rand.NewPCG(uint64(w.seed), uint64(id)))}
	v.json = http.Header{"Content-Type": {"application/json"}}
	v.auth = http.Header{}
	if w.cfg.SharedUser {
		v.setToken(w.shared.token)
		v.user = w.shared.user
	}
	return v, nil
}

type vu struct {
	w       *Workload
	id      int
	rng     *rand.Rand
	token   string
	user    string      // the VU's own user (or the shared one)
	json    http.Header // Content-Type only
	auth    http.Header // Authorization (+ Content-Type)
	neurons []string
	n       int
	// Requests are built in body (and prompt) and responses parsed with
	// parser, both the VU's own and reused (wire.go).
	body, prompt []byte
	parser       fastjson.Parser
	flowAuth     http.Header // the auth flow's new user's Authorization
}

func (v *vu) setToken(t string) {
	v.token = t
	v.auth = http.Header{"Content-Type": {"application/json"}, "Authorization": {"Bearer " + t}}
}

// Iteration implements load.VU: one operation of the mix, then think time.
func (v *vu) Iteration(ctx context.Context, it *load.Iter) error {
	v.n++
	var err error
	if v.token == "" {
		err = v.login(ctx, it)
	}
	if err == nil {
		switch v.pick() {
		case OpSignal:
			err = v.signal(ctx, it)
		case OpStatus:
			err = v.status(ctx, it)
		case OpNeurons:
			err = v.neuronQuery(ctx, it)
		case OpAuth:
			err = v.authFlow(ctx, it)
		case OpMetrics:
			err = v.metrics(ctx, it)
		case OpAsyncSignal:
			err = v.asyncSignal(ctx, it)
		case OpAPIKey:
			err = v.apiKey(ctx, it)
		}
	}
	if serr := load.Sleep(ctx, v.w.cfg.ThinkTime); serr != nil && err == nil {
		err = serr
	}
	return err
}

func (v *vu) pick() string {
	x := v.rng.Float64() * v.w.cum[nOps-1]
	for i, c := range v.w.cum {
		if x < c {
			return ops[i]
		}
	}
	return ops[nOps-1]
}

// login is the VU's own register + login, once (again after a 401).
func (v *vu) login(ctx context.Context, it *load.Iter) error {
	user := "lab_" + v.w.runID + "_vu" + strconv.Itoa(v.id)
	if _, err := v.register(ctx, it, OpSetup, user); err != nil {
		return err
	}
	tok, err := v.doLogin(ctx, it, OpSetup, user)
	if err != nil {
		return err
	}
	v.setToken(tok)
	v.user = user
	return nil
}

type userJSON struct {
	ID        string `json:"id"`
	Username  string `json:"username"`
	Email     string `json:"email"`
	CreatedAt string `json:"created_at"`
}

type tokenResponse struct {
	AccessToken  string    `json:"access_token"`
	RefreshToken string    `json:"refresh_token"`
	ExpiresIn    int       `json:"expires_in"`
	User         *userJSON `json:"user"`
}

var errFailed = errors.New("request failed")

func (v *vu) register(ctx context.Context, it *load.Iter, op, user string) (bool, error) {
	b := append(v.body[:0], `{"email":"`...)
	b = append(appendEscaped(appendEscaped(b, user), "@lab.invalid"), `","password":`...)
	b = append(appendQuoted(b, password), `,"username":`...)
	v.body = append(appendQuoted(b, user), '}')
	res, err := it.HTTP.Do(ctx, &load.Request{Method: http.MethodPost, Path: "/api/v1/auth/register", Body: v.body, Header: v.json, Op: op})
	if err != nil {
		return false, err
	}
	if op == OpSetup && res.Status == http.StatusConflict {
		return true, nil // this VU registered in an earlier login
	}
	var u *fastjson.Value
	if o := v.object(res.Body); o != nil {
		u = o.Get("user")
	}
	if !it.Check("register: 201 with user {id, username, email, created_at}", res.Status == http.StatusCreated && userOK(u, user)) {
		return false, fmt.Errorf("register %s: status %d: %w", user, res.Status, errFailed)
	}
	v.w.ackUser(str(u, "id"), user)
	return true, nil
}

func (v *vu) doLogin(ctx context.Context, it *load.Iter, op, user string) (string, error) {
	b := append(v.body[:0], `{"password":`...)
	b = append(appendQuoted(b, password), `,"username":`...)
	v.body = append(appendQuoted(b, user), '}')
	res, err := it.HTTP.Do(ctx, &load.Request{Method: http.MethodPost, Path: "/api/v1/auth/login", Body: v.body, Header: v.json, Op: op})
	if err != nil {
		return "", err
	}
	o := v.object(res.Body)
	ok := res.Status == http.StatusOK && o != nil && len(str(o, "access_token")) > 0 && len(str(o, "refresh_token")) > 0
	if ok {
		exp, isInt := integer(o, "expires_in")
		u := o.Get("user")
		ok = isInt && exp > 0 && u != nil && string(str(u, "username")) == user
	}
	if !it.Check("login: 200 with access_token, refresh_token, expires_in, user", ok) {
		return "", fmt.Errorf("login %s: status %d: %w", user, res.Status, errFailed)
	}
	return string(str(o, "access_token")), nil
}

// signalShape tells whether o is a processed signal of layer (empty: any):
// signal_id, layer, output, trace[], cost_usd and duration_ms.
func signalShape(o *fastjson.Value, layer string) bool {
	return o != nil && len(str(o, "signal_id")) > 0 && (layer == "" || string(str(o, "layer")) == layer) &&
		isString(o, "output") && len(o.GetArray("trace")) > 0 && isNumber(o, "cost_usd") && isNumber(o, "duration_ms")
}

// content draws the signal's prompt from the layer's catalogue into
// v.prompt.
func (v *vu) content(layer string) []byte {
	v.prompt = appendPrompt(v.prompt[:0], v.w.seed, layer, v.w.zipf.sample(v.rng))
	return v.prompt
}

// signalBody is {"content": a catalogue prompt, "layer": layer}.
func (v *vu) signalBody(layer string) []byte {
	b := append(v.body[:0], `{"content":`...)
	b = append(appendQuoted(b, v.content(layer)), `,"layer":`...)
	v.body = append(appendQuoted(b, layer), '}')
	return v.body
}

func (v *vu) signal(ctx context.Context, it *load.Iter) error {
	layer := v.w.cfg.Layers[v.rng.IntN(len(v.w.cfg.Layers))]
	res, err := it.HTTP.Do(ctx, &load.Request{Method: http.MethodPost, Path: "/api/v1/signals", Body: v.signalBody(layer), Header: v.auth, Op: OpSignal, Layer: layer})
	if err != nil {
		return err
	}
	// cost and tokens come on failed responses too
	costH, tokensH := res.Header.Get("X-HAL9-Cost-USD"), res.Header.Get("X-HAL9-Tokens")
	if costH != "" {
		if f, err := strconv.ParseFloat(costH, 64); err == nil {
			it.Add(v.w.metrics.cost, f)
		}
	}
	if tokensH != "" {
		if n, err := strconv.ParseFloat(tokensH, 64); err == nil {
			it.Add(v.w.metrics.tokens, n)
		}
	}
	if res.Status == http.StatusUnauthorized && !v.w.cfg.SharedUser {
		v.token = "" // expired: log in again next iteration
	}
	if !it.Check("signal: 200", res.Status == http.StatusOK) {
		return nil // http_req_failed has it
	}
	o := v.object(res.Body)
	shape := signalShape(o, layer)
	var trace []*fastjson.Value
	if o != nil {
		v.ackSignal(str(o, "signal_id"), http.StatusOK)
		trace = o.GetArray("trace")
	}
	hits, total, complete := v.traceSamples(it, trace)
	it.Check("signal: body has signal_id, layer, output, trace[], cost_usd, duration_ms", shape && complete)
	hdr := res.Header.Get("X-HAL9-Cache")
	it.Check("signal: X-HAL9-Cache, X-HAL9-Cost-USD, X-HAL9-Tokens headers", hdr != "" && costH != "" && tokensH != "")
	want := "partial"
	switch {
	case total > 0 && hits == total:
		want = "hit"
	case hits == 0:
		want = "miss"
	}
	it.Check("signal: X-HAL9-Cache agrees with the trace", hdr == want)
	it.Add(v.w.metrics.signalHit, rateSample(hdr == "hit"))
	return nil
}

// rateSample is the sample a Rate metric takes for ok: 1 passes, 0 fails.
func rateSample(ok bool) float64 {
	if ok {
		return 1
	}
	return 0
}

func (v *vu) status(ctx context.Context, it *load.Iter) error {
	res, err := it.HTTP.Do(ctx, &load.Request{Method: http.MethodGet, Path: "/api/v1/status", Header: v.auth, Op: OpStatus})
	if err != nil {
		return err
	}
	if res.Status == http.StatusTooManyRequests {
		it.Check("429 has Retry-After", res.Header.Get("Retry-After") != "")
	}
	ok := res.Status == http.StatusOK
	if ok {
		o := v.object(res.Body)
		ok = o != nil && len(str(o, "status")) > 0
	}
	it.Check("status: 200 with status", ok)
	return nil
}

func (v *vu) neuronQuery(ctx context.Context, it *load.Iter) error {
	res, err := it.HTTP.Do(ctx, &load.Request{Method: http.MethodGet, Path: "/api/v1/neurons", Header: v.auth, Op: OpNeurons})
	if err != nil {
		return err
	}
	var list []*fastjson.Value
	if o := v.object(res.Body); o != nil && res.Status == http.StatusOK {
		list = o.GetArray("neurons")
	}
	if !it.Check("neurons: 200 with a non-empty list", len(list) > 0) {
		return nil
	}
	id := string(str(list[v.rng.IntN(len(list))], "id"))
	res, err = it.HTTP.Do(ctx, &load.Request{Method: http.MethodGet, Path: "/api/v1/neurons/" + id,
		Name: "/api/v1/neurons/{id}", Header: v.auth, Op: OpNeurons})
	if err != nil {
		return err
	}
	ok := res.Status == http.StatusOK
	if ok {
		o := v.object(res.Body)
		ok = o != nil && isString(o, "id") && string(str(o, "id")) == id
	}
	it.Check("neuron: 200 with the same id", ok)
	return nil
}

func (v *vu) authFlow(ctx context.Context, it *load.Iter) error {
	user := "lab_" + v.w.runID + "_" + strconv.Itoa(v.id) + "_" + strconv.Itoa(v.n)
	if ok, err := v.register(ctx, it, OpAuth, user); !ok || err != nil {
		return nil // recorded as a failed check and request
	}
	tok, err := v.doLogin(ctx, it, OpAuth, user)
	if err != nil {
		return nil
	}
	if v.flowAuth == nil {
		v.flowAuth = http.Header{"Authorization": {""}}
	}
	v.flowAuth["Authorization"][0] = "Bearer " + tok
	res, err := it.HTTP.Do(ctx, &load.Request{Method: http.MethodGet, Path: "/api/v1/auth/profile", Header: v.flowAuth, Op: OpAuth})
	if err != nil {
		return err
	}
	ok := res.Status == http.StatusOK
	if ok {
		o := v.object(res.Body)
		ok = o != nil && string(o.GetStringBytes("user", "username")) == user
	}
	it.Check("profile: 200 with the user", ok)
	return nil
}

func (v *vu) metrics(ctx context.Context, it *load.Iter) error {
	res, err := it.HTTP.Do(ctx, &load.Request{Method: http.MethodGet, Path: "/api/v1/metrics", Header: v.auth, Op: OpMetrics})
	if err != nil {
		return err
	}
	ok := res.Status == http.StatusOK
	if ok {
		o := v.object(res.Body)
		ok = o != nil && o.Exists("signals")
	}
	it.Check("metrics: 200 with signals", ok)
	return nil
}
