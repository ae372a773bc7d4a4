package cache

import (
	"github.com/hal9-lab/hal9-lab/server/telemetry"

	"github.com/prometheus/client_golang/prometheus"
)

// Results of a cache read, the values of the result label.
const (
	ResultHit   = "hit"
	ResultMiss  = "miss"
	ResultError = "error" // the tier failed (or is in its back-off); treated as a miss
)

// Metrics are the cache side's Prometheus metrics. Create one per registry;
// a nil *Metrics is valid and records nothing.
type Metrics struct {
	Requests    *prometheus.CounterVec // hal9_cache_requests_total{tier,layer,result}
	WriteErrors *prometheus.CounterVec // hal9_cache_write_errors_total{tier}
	Evictions   *prometheus.CounterVec // hal9_cache_evictions_total{tier}: dropped for room
	Expired     *prometheus.CounterVec // hal9_cache_expired_total{tier}: removed at TTL
	Entries     *prometheus.GaugeVec   // hal9_cache_entries{tier}
	Bytes       *prometheus.GaugeVec   // hal9_cache_bytes{tier}
	Coalesced   *prometheus.CounterVec // hal9_cache_coalesced_total{layer}

	WBFlushed     prometheus.Counter // hal9_cache_writebehind_flushed_total
	WBDropped     prometheus.Counter // hal9_cache_writebehind_dropped_total
	WBFlushErrors prometheus.Counter // hal9_cache_writebehind_flush_errors_total
	WBQueue       prometheus.Gauge   // hal9_cache_writebehind_queue_length
}

// NewMetrics creates the metrics and registers them on reg (nil: not
// registered). A registry already holding them gives back its collectors.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hal9_cache_requests_total",
			Help: "Cache reads by tier (process, redis), layer (L1..L5 or record kind) and result (hit, miss, error).",
		}, []string{"tier", "layer", "result"}),
		WriteErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hal9_cache_write_errors_total",
			Help: "Failed cache writes and deletes by tier (ignored: the cache is best effort).",
		}, []string{"tier"}),
		Evictions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hal9_cache_evictions_total",
			Help: "Entries evicted to make room (cost-aware: large, rarely used first).",
		}, []string{"tier"}),
		Expired: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hal9_cache_expired_total",
			Help: "Entries removed because their TTL passed.",
		}, []string{"tier"}),
		Entries: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "hal9_cache_entries",
			Help: "Entries held by the tier (process tier; expired entries count until swept).",
		}, []string{"tier"}),
		Bytes: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "hal9_cache_bytes",
			Help: "Value bytes held by the tier (process tier).",
		}, []string{"tier"}),
		Coalesced: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hal9_cache_coalesced_total",
			Help: "Reads that waited for an identical in-flight load instead of loading.",
		}, []string{"layer"}),
		WBFlushed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hal9_cache_writebehind_flushed_total",
			Help: "Write-behind records written to their sink.",
		}),
		WBDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hal9_cache_writebehind_dropped_total",
			Help: "Write-behind records lost: dropped (oldest first) from a full queue, or unflushed at Close.",
		}),
		WBFlushErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hal9_cache_writebehind_flush_errors_total",
			Help: "Write-behind batches the sink refused (their records are retried).",
		}),
		WBQueue: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "hal9_cache_writebehind_queue_length",
			Help: "Write-behind records waiting for their sink.",
		}),
	}
	if reg != nil {
		m.Requests = telemetry.Register(reg, m.Requests)
		m.WriteErrors = telemetry.Register(reg, m.WriteErrors)
		m.Evictions = telemetry.Register(reg, m.Evictions)
		m.Expired = telemetry.Register(reg, m.Expired)
		m.Entries = telemetry.Register(reg, m.Entries)
		m.Bytes = telemetry.Register(reg, m.Bytes)
		m.Coalesced = telemetry.Register(reg, m.Coalesced)
		m.WBFlushed = telemetry.Register(reg, m.WBFlushed)
		m.WBDropped = telemetry.Register(reg, m.WBDropped)
		m.WBFlushErrors = telemetry.Register(reg, m.WBFlushErrors)
		m.WBQueue = telemetry.Register(reg, m.WBQueue)
	}
	return m
}

func (m *Metrics) request(tier, layer, result string) {
	if m != nil {
		m.Requests.WithLabelValues(tier, layer, result).Inc()
	}
}

func (m *Metrics) writeError(tier string) {
	if m != nil {
		m.WriteErrors.WithLabelValues(tier).Inc()
	}
}
