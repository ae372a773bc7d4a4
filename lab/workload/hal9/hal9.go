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
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"

	"github.com/valyala/fastjson"

	"github.com/hal9-lab/hal9-lab/lab/ledger"
	"github.com/hal9-lab/hal9-lab/lab/load"
	"github.com/hal9-lab/hal9-lab/lab/workload/internal/section"
)

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
