package neuron

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the router's Prometheus series. A nil *Metrics records nothing.
type Metrics struct {
	signals  *prometheus.CounterVec   // hal9_signals_total{layer,status}
	duration *prometheus.HistogramVec // hal9_signal_duration_seconds{layer}
	hops     *prometheus.CounterVec   // hal9_neuron_hops_total{layer,direction,result}
}

// SignalBuckets cover a cached signal (ms) up to five uncached LLM hops.
var SignalBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1, 2.5, 5, 10, 30, 60}

// NewMetrics registers the router's metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		signals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hal9_signals_total",
			Help: "Signals processed, by entry layer and final status (processed, failed, canceled: the client left first).",
		}, []string{"layer", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "hal9_signal_duration_seconds",
			Help:    "Time to carry a signal from its entry layer down to L1, by entry layer.",
			Buckets: SignalBuckets,
		}, []string{"layer"}),
		hops: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hal9_neuron_hops_total",
			Help: "Hops through neurons by layer, direction (forward, backward) and result (hit, miss, error, canceled: the client left).",
		}, []string{"layer", "direction", "result"}),
	}
	reg.MustRegister(m.signals, m.duration, m.hops)
	// Pre-create the series so dashboards and rate() see zeros, not gaps.
	for _, l := range Layers {
		for _, s := range []string{"processed", "failed", "canceled"} {
			m.signals.WithLabelValues(l, s)
		}
		m.duration.WithLabelValues(l)
	}
	return m
}

func (m *Metrics) signal(layer, status string, d time.Duration) {
	if m == nil {
		return
	}
	m.signals.WithLabelValues(layer, status).Inc()
	m.duration.WithLabelValues(layer).Observe(d.Seconds())
}

func (m *Metrics) hop(layer, direction, result string) {
	if m == nil {
		return
	}
	m.hops.WithLabelValues(layer, direction, result).Inc()
}

// Collector exports neuron states at scrape time:
// hal9_neuron_up{neuron,layer} (1 active, 0 degraded) and
// hal9_neurons{layer,state} (count per state).
func (r *Router) Collector() prometheus.Collector { return &stateCollector{r: r} }

var (
	upDesc = prometheus.NewDesc("hal9_neuron_up",
		"1 when the neuron is active, 0 when degraded (3+ consecutive failures or its layer's breaker open).",
		[]string{"neuron", "layer"}, nil)
	countDesc = prometheus.NewDesc("hal9_neurons",
		"Neurons per layer and state.", []string{"layer", "state"}, nil)
)

type stateCollector struct{ r *Router }

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) { ch <- upDesc; ch <- countDesc }

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	counts := map[[2]string]int{}
	for _, l := range Layers {
		counts[[2]string{l, StateActive}] = 0
		counts[[2]string{l, StateDegraded}] = 0
	}
	for _, n := range c.r.Neurons() {
		v := 0.0
		if n.State == StateActive {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(upDesc, prometheus.GaugeValue, v, n.ID, n.Layer)
		counts[[2]string{n.Layer, n.State}]++
	}
	for k, v := range counts {
		ch <- prometheus.MustNewConstMetric(countDesc, prometheus.GaugeValue, float64(v), k[0], k[1])
	}
}

// LayerStats are one layer's counters since start.
type LayerStats struct {
	// Signals that entered at this layer.
	Processed    int64   `json:"processed"`
	Failed       int64   `json:"failed"`
	AvgLatencyMS float64 `json:"avg_latency_ms"`
	// Hops through this layer's neurons.
	Hops        int64            `json:"hops"`
	CacheHits   map[string]int64 `json:"cache_hits"` // by tier: process, redis, inflight
	CacheMisses int64            `json:"cache_misses"`
	HopErrors   int64            `json:"hop_errors"`
	HitRate     float64          `json:"cache_hit_rate"` // hits / (hits + misses)
	TokensIn    int64            `json:"tokens_in"`
	TokensOut   int64            `json:"tokens_out"`
	CostUSD     float64          `json:"cost_usd"`

	durationNS int64
}

// Stats are the router's counters since start.
type Stats struct {
	Processed    int64                 `json:"processed"`
	Failed       int64                 `json:"failed"`
	AvgLatencyMS float64               `json:"avg_latency_ms"`
	TokensIn     int64                 `json:"tokens_in"`
	TokensOut    int64                 `json:"tokens_out"`
	CostUSD      float64               `json:"cost_usd"`
	CacheHitRate float64               `json:"cache_hit_rate"`
	CacheHits    map[string]int64      `json:"cache_hits"` // by tier
	CacheMisses  int64                 `json:"cache_misses"`
	Layers       map[string]LayerStats `json:"layers"`
}

type stats struct {
	mu     sync.Mutex
	layers map[string]*LayerStats
}

func newStats() *stats {
	s := &stats{layers: map[string]*LayerStats{}}
	for _, l := range Layers {
		s.layers[l] = &LayerStats{CacheHits: map[string]int64{}}
	}
	return s
}

// hop counts one forward hop; kind is "miss", "error" or "hit_<tier>".
func (s *stats) hop(layer, kind string, in, out int, cost float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ls := s.layers[layer]
	ls.Hops++
	switch kind {
	case "miss":
		ls.CacheMisses++
	case "error":
		ls.HopErrors++
	default:
		ls.CacheHits[kind[len("hit_"):]]++
	}
	ls.TokensIn += int64(in)
	ls.TokensOut += int64(out)
	ls.CostUSD += cost
}

func (s *stats) signal(layer, status string, d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ls := s.layers[layer]
	if status == "processed" {
		ls.Processed++
	} else {
		ls.Failed++
	}
	ls.durationNS += int64(d)
}

func (s *stats) snapshot() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := Stats{Layers: map[string]LayerStats{}, CacheHits: map[string]int64{}}
	var durNS, hits int64
	for l, ls := range s.layers {
		c := *ls
		c.CacheHits = map[string]int64{}
		var lh int64
		for t, v := range ls.CacheHits {
			c.CacheHits[t] = v
			out.CacheHits[t] += v
			lh += v
		}
		if n := c.Processed + c.Failed; n > 0 {
			c.AvgLatencyMS = float64(c.durationNS) / float64(n) / 1e6
		}
		if lh+c.CacheMisses > 0 {
			c.HitRate = float64(lh) / float64(lh+c.CacheMisses)
		}
		out.Layers[l] = c
		out.Processed += c.Processed
		out.Failed += c.Failed
		out.TokensIn += c.TokensIn
		out.TokensOut += c.TokensOut
		out.CostUSD += c.CostUSD
		out.CacheMisses += c.CacheMisses
		durNS += c.durationNS
		hits += lh
	}
	if n := out.Processed + out.Failed; n > 0 {
		out.AvgLatencyMS = float64(durNS) / float64(n) / 1e6
	}
	if hits+out.CacheMisses > 0 {
		out.CacheHitRate = float64(hits) / float64(hits+out.CacheMisses)
	}
	return out
}
