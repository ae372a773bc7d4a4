package neuron

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hal9-lab/hal9-lab/server/llm"
)

// CacheResult says where a cached value came from.
type CacheResult struct {
	Hit       bool
	Tier      string // "process", "redis", or "" on a miss
	Coalesced bool   // waited for an identical in-flight load
}

// Cache is the per-layer response cache the router reads through;
// server/app adapts *cache.Layered to it.
type Cache interface {
	GetOrLoad(ctx context.Context, layer, key string, ttl time.Duration,
		load func(context.Context) ([]byte, error)) ([]byte, CacheResult, error)
}

// Neuron states, as stored and reported.
const (
	StateActive   = "active"
	StateDegraded = "degraded"
)

// Hop directions in a trace.
const (
	Forward  = "forward"
	Backward = "backward"
)

// InputError is a signal the router refuses before any work (a 400).
type InputError struct{ Msg string }

func (e *InputError) Error() string { return e.Msg }

// HopError is returned when a hop's LLM call fails; Err is the provider's
// error (llm.ErrCircuitOpen, llm.ErrRateLimited, ...).
type HopError struct {
	NeuronID string
	Layer    string
	Err      error
}

func (e *HopError) Error() string {
	return fmt.Sprintf("neuron %s (%s): %v", e.NeuronID, e.Layer, e.Err)
}
func (e *HopError) Unwrap() error { return e.Err }

// Options configure a Router.
type Options struct {
	Topology Topology
	// Provider answers the hops: *llm.Guard in the server.
	Provider llm.Provider
	// Cache may be nil: every hop then calls the provider.
	Cache Cache
	// Key builds the cache key of a hop (cache.LLMKey in the server);
	// required with a Cache.
	Key func(layer, neuronID, content string) string
	// TTLs per layer; a missing layer uses DefaultTTL.
	TTLs      map[string]time.Duration
	Model     string
	MaxTokens int
	// BreakerState returns "closed", "half-open" or "open" for a layer; nil
	// means always closed. An open breaker marks the layer's neurons degraded.
	BreakerState func(layer string) string
	Metrics      *Metrics
	Logger       *slog.Logger
}

// DefaultTTL is used for a layer without a configured TTL.
const DefaultTTL = 5 * time.Minute

// Router carries signals through the hierarchy.
type Router struct {
	opts    Options
	byID    map[string]*node
	byLayer map[string][]*node
	order   []*node
	stats   *stats
}

// node is one neuron with its counters (of the forward hops it served).
type node struct {
	Spec
	processed   atomic.Int64
	failed      atomic.Int64
	durationNS  atomic.Int64 // total hop time
	consecutive atomic.Int64 // consecutive failures; 3 or more → degraded
	lastErr     atomic.Pointer[string]
	system      string // its system prompt, made once
}

// NewRouter builds the neurons of the topology.
func NewRouter(opts Options) (*Router, error) {
	if opts.Topology == nil {
		opts.Topology = DefaultTopology()
	}
	if err := opts.Topology.Validate(); err != nil {
		return nil, err
	}
	if opts.Provider == nil {
		return nil, errors.New("neuron router: a Provider is required")
	}
	if opts.Cache != nil && opts.Key == nil {
		return nil, errors.New("neuron router: a Cache needs a Key function")
	}
	if opts.MaxTokens <= 0 {
		opts.MaxTokens = 512
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	r := &Router{opts: opts, byID: map[string]*node{}, byLayer: map[string][]*node{}, stats: newStats()}
	for _, s := range opts.Topology.Specs() {
		n := &node{Spec: s}
		n.system = systemPrompt(n)
		r.byID[s.ID] = n
		r.byLayer[s.Layer] = append(r.byLayer[s.Layer], n)
		r.order = append(r.order, n)
	}
	return r, nil
}

// Input is one signal to process.
type Input struct {
	Content  string
	Layer    string
	NeuronID string // optional entry neuron; must belong to Layer
	UserID   string // whom the LLM calls are charged to (llm.WithUser); "" none
}

// BackwardPrefix starts the Error of every backward hop, which is how a
// stored hop's direction is told apart (store.Hop has no direction field).
const BackwardPrefix = "backward from "

// Hop is one step of a trace.
type Hop struct {
	NeuronID  string
	Layer     string
	Direction string // Forward or Backward
	Cache     string // "hit" or "miss" (forward hops that reached the cache), "" otherwise
	Tier      string // "process", "redis", "inflight" on a hit
	TokensIn  int
	TokensOut int
	CostUSD   float64
	Duration  time.Duration
	Error     string
	Input     string // the prompt of a forward hop
	Output    string // the text a forward hop produced
}

// Result is a processed (or failed) signal.
type Result struct {
	EntryNeuron string
	Output      string
	Hops        []Hop
	TokensIn    int
	TokensOut   int
	CostUSD     float64 // what the LLM billed for this signal; 0 for cache hits
	Duration    time.Duration
}

// CacheSummary is "hit" when every forward hop hit, "miss" when none did,
// "partial" otherwise.
func (r Result) CacheSummary() string {
	hits, total := 0, 0
	for _, h := range r.Hops {
		if h.Direction != Forward || h.Cache == "" {
			continue
		}
		total++
		if h.Cache == "hit" {
			hits++
		}
	}
	switch {
	case total > 0 && hits == total:
		return "hit"
	case hits == 0:
		return "miss"
	default:
		return "partial"
	}
}

// Entry returns the neuron a signal enters at, or an *InputError.
func (r *Router) Entry(in Input) (string, error) {
	n, err := r.entry(in)
	if err != nil {
		return "", err
	}
	return n.ID, nil
}

func (r *Router) entry(in Input) (*node, error) {
	if !ValidLayer(in.Layer) {
		return nil, &InputError{fmt.Sprintf("layer must be one of %s, got %q", ValidLayersText, in.Layer)}
	}
	if in.NeuronID == "" {
		return r.pick(in.Layer, in.Content), nil
	}
	n, ok := r.byID[in.NeuronID]
	if !ok {
		return nil, &InputError{fmt.Sprintf("neuron_id %q does not exist; GET /api/v1/neurons lists the neurons, or omit neuron_id", in.NeuronID)}
	}
	if n.Layer != in.Layer {
		return nil, &InputError{fmt.Sprintf("neuron_id %q belongs to layer %s, not %s; pick a neuron of layer %s or omit neuron_id", in.NeuronID, n.Layer, in.Layer, in.Layer)}
	}
	return n, nil
}

// pick chooses a layer's neuron by a stable hash of the content, so a
// repeated signal visits the same neurons and hits their cache entries.
func (r *Router) pick(layer, content string) *node {
	ns := r.byLayer[layer]
	h := fnv.New64a()
	h.Write([]byte(content))
	x := h.Sum64() ^ (uint64(LayerIndex(layer)) * 0x9E3779B97F4A7C15)
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	return ns[x%uint64(len(ns))]
}

// cached is what the response cache holds for one hop.
type cached struct {
	Text      string `json:"text"`
	Model     string `json:"model,omitempty"`
	TokensIn  int    `json:"tokens_in"`
	TokensOut int    `json:"tokens_out"`
}

// Process carries the signal from its entry neuron down to L1. On a failed
// hop it sends a backward signal up the hops already done (recorded in the
// trace) and returns the partial result with a *HopError.
func (r *Router) Process(ctx context.Context, in Input) (Result, error) {
	start := time.Now()
	entry, err := r.entry(in)
	if err != nil {
		return Result{}, err
	}
	if in.UserID != "" {
		ctx = llm.WithUser(ctx, in.UserID)
	}
	res := Result{EntryNeuron: entry.ID}
	path := []*node{entry}
	for li := LayerIndex(in.Layer) - 1; li >= 1; li-- {
		path = append(path, r.pick(Layers[li-1], in.Content))
	}
	res.Hops = make([]Hop, 0, len(path)+1)
	prompt := in.Content
	for i, n := range path {
		hop, out, err := r.hop(ctx, n, prompt)
		res.Hops = append(res.Hops, hop)
		res.TokensIn += hop.TokensIn
		res.TokensOut += hop.TokensOut
		res.CostUSD += hop.CostUSD
		if err != nil {
			r.backward(ctx, &res, path[:i], n, err)
			res.Duration = time.Since(start)
			status := "failed"
			if ctx.Err() != nil {
				status = "canceled"
			}
			r.finish(in.Layer, res.Duration, status)
			return res, &HopError{NeuronID: n.ID, Layer: n.Layer, Err: err}
		}
		prompt = out
	}
	res.Output = prompt
	res.Duration = time.Since(start)
	r.finish(in.Layer, res.Duration, "processed")
	return res, nil
}

func (r *Router) hop(ctx context.Context, n *node, prompt string) (Hop, string, error) {
	start := time.Now()
	hop := Hop{NeuronID: n.ID, Layer: n.Layer, Direction: Forward}
	req := llm.Request{
		Model:     r.opts.Model,
		Layer:     n.Layer,
		NeuronID:  n.ID,
		System:    n.system,
		Prompt:    prompt,
		MaxTokens: r.opts.MaxTokens,
	}
	var (
		ran  atomic.Bool
		resp llm.Response
		mu   sync.Mutex
	)
	load := func(ctx context.Context) ([]byte, error) {
		ran.Store(true)
		out, err := r.opts.Provider.Complete(ctx, req)
		if err != nil {
			return nil, err
		}
		mu.Lock()
		resp = out
		mu.Unlock()
		return json.Marshal(cached{Text: out.Text, Model: out.Model, TokensIn: out.TokensIn, TokensOut: out.TokensOut})
	}
	var (
		text string
		err  error
		cres CacheResult
	)
	if r.opts.Cache == nil {
		_, err = load(ctx)
	} else {
		var b []byte
		b, cres, err = r.opts.Cache.GetOrLoad(ctx, n.Layer, r.opts.Key(n.Layer, n.ID, prompt), r.ttl(n.Layer), load)
		if err == nil && !ran.Load() {
			var c cached
			if jerr := json.Unmarshal(b, &c); jerr != nil {
				err = fmt.Errorf("decode cached response for %s: %w", n.ID, jerr)
			}
			text = c.Text
		}
	}
	hop.Duration = time.Since(start)
	if err != nil {
		hop.Cache = "miss" // nothing usable came from the cache
		hop.Error = err.Error()
		if ctx.Err() != nil {
			// The client left (or its deadline passed): not the neuron's
			// failure, so it neither degrades the neuron nor counts as an error.
			r.opts.Metrics.hop(n.Layer, Forward, "canceled")
			return hop, "", err
		}
		n.durationNS.Add(int64(hop.Duration))
		if !errors.Is(err, llm.ErrBudgetExceeded) && !errors.Is(err, llm.ErrUserLimit) { // a refusal of the ledger, not of the neuron
			n.failed.Add(1)
			n.consecutive.Add(1)
			msg := err.Error()
			n.lastErr.Store(&msg)
		}
		r.stats.hop(n.Layer, "error", 0, 0, 0)
		r.opts.Metrics.hop(n.Layer, Forward, "error")
		return hop, "", err
	}
	n.durationNS.Add(int64(hop.Duration))
	n.processed.Add(1)
	n.consecutive.Store(0)
	if ran.Load() {
		// This request's own LLM call: it pays the tokens and the cost.
		mu.Lock()
		text, hop.TokensIn, hop.TokensOut, hop.CostUSD = resp.Text, resp.TokensIn, resp.TokensOut, resp.CostUSD
		mu.Unlock()
		hop.Cache = "miss"
	} else {
		// Served from a tier or from an identical in-flight call made by
		// someone else: nothing billed to this signal.
		hop.Cache = "hit"
		hop.Tier = cres.Tier
		if cres.Coalesced || hop.Tier == "" {
			hop.Tier = "inflight"
		}
	}
	kind := hop.Cache
	if kind == "hit" {
		kind = "hit_" + hop.Tier
	}
	hop.Input, hop.Output = prompt, text
	r.stats.hop(n.Layer, kind, hop.TokensIn, hop.TokensOut, hop.CostUSD)
	r.opts.Metrics.hop(n.Layer, Forward, hop.Cache)
	return hop, text, nil
}

// backward records the error signal travelling back up the hops already
// done (nearest first), so each upstream neuron learns its output failed.
func (r *Router) backward(ctx context.Context, res *Result, done []*node, failed *node, cause error) {
	msg := fmt.Sprintf("%s%s: %v", BackwardPrefix, failed.ID, cause)
	for i := len(done) - 1; i >= 0; i-- {
		n := done[i]
		res.Hops = append(res.Hops, Hop{NeuronID: n.ID, Layer: n.Layer, Direction: Backward, Error: msg})
		r.opts.Metrics.hop(n.Layer, Backward, "error")
	}
	r.opts.Logger.LogAttrs(ctx, slog.LevelWarn, "backward signal",
		slog.String("failed_neuron", failed.ID), slog.String("layer", failed.Layer),
		slog.Int("upstream_hops", len(done)), slog.String("error", cause.Error()))
}

// finish counts a signal: processed, failed, or canceled (the client left;
// counted in the metrics only, neither processed nor failed in the stats).
func (r *Router) finish(layer string, d time.Duration, status string) {
	if status != "canceled" {
		r.stats.signal(layer, status, d)
	}
	r.opts.Metrics.signal(layer, status, d)
}

func (r *Router) ttl(layer string) time.Duration {
	if d, ok := r.opts.TTLs[layer]; ok && d > 0 {
		return d
	}
	return DefaultTTL
}

func systemPrompt(n *node) string {
	return "You are " + n.ID + ", a HAL9 " + Role(n.Layer) + " neuron in layer " + n.Layer +
		". Turn the input into concise guidance for the layer below you."
}

// Info is one neuron's state for the API.
type Info struct {
	ID           string  `json:"id"`
	Layer        string  `json:"layer"`
	Role         string  `json:"role"`
	State        string  `json:"state"`
	Processed    int64   `json:"processed"`
	Failed       int64   `json:"failed"`
	AvgLatencyMS float64 `json:"avg_latency_ms"`
	Breaker      string  `json:"breaker"`
	LastError    string  `json:"last_error,omitempty"`
}

func (r *Router) info(n *node) Info {
	breaker := "closed"
	if r.opts.BreakerState != nil {
		if s := r.opts.BreakerState(n.Layer); s != "" {
			breaker = s
		}
	}
	p, f := n.processed.Load(), n.failed.Load()
	ni := Info{ID: n.ID, Layer: n.Layer, Role: Role(n.Layer), State: StateActive,
		Processed: p, Failed: f, Breaker: breaker}
	if p+f > 0 {
		ni.AvgLatencyMS = float64(n.durationNS.Load()) / float64(p+f) / 1e6
	}
	if n.consecutive.Load() >= 3 || breaker == "open" {
		ni.State = StateDegraded
	}
	if s := n.lastErr.Load(); s != nil {
		ni.LastError = *s
	}
	return ni
}

// Neurons lists every neuron's state, by layer then number.
func (r *Router) Neurons() []Info {
	out := make([]Info, 0, len(r.order))
	for _, n := range r.order {
		out = append(out, r.info(n))
	}
	return out
}

// Neuron returns one neuron's state.
func (r *Router) Neuron(id string) (Info, bool) {
	n, ok := r.byID[id]
	if !ok {
		return Info{}, false
	}
	return r.info(n), true
}

// Specs lists the neurons' identities (for persisting them at start).
func (r *Router) Specs() []Spec {
	out := make([]Spec, len(r.order))
	for i, n := range r.order {
		out[i] = n.Spec
	}
	return out
}

// Up reports whether every layer has at least one neuron that is not degraded.
func (r *Router) Up() (bool, []string) {
	var down []string
	active := func(n *node) bool { return r.info(n).State == StateActive }
	for _, l := range Layers {
		if !slices.ContainsFunc(r.byLayer[l], active) {
			down = append(down, l)
		}
	}
	slices.Sort(down)
	return len(down) == 0, down
}

// Stats returns the counters behind GET /api/v1/metrics and /api/v1/status.
func (r *Router) Stats() Stats { return r.stats.snapshot() }
