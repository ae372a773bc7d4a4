package faults

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Health is one look at the server from its admin listener.
type Health struct {
	T time.Time
	// Ready is /readyz's status: ready, degraded, unavailable, or down
	// (no answer).
	Ready string
	// StoreUp, RedisUp: hal9_backend_up (-1 unknown).
	StoreUp, RedisUp float64
	// BreakersOpen counts breakers in state open (hal9_circuit_breaker_state 2).
	BreakersOpen int
	// CircuitOpenCalls is hal9_llm_requests_total{outcome="circuit_open"}
	// (cumulative: calls refused by an open breaker, i.e. load shed).
	CircuitOpenCalls float64
}

// Monitor looks at the server every interval until ctx ends.
type Monitor struct {
	mu      sync.Mutex
	samples []Health
	done    chan struct{}
}

// StartMonitor polls adminURL's /readyz and /metrics every interval.
func StartMonitor(ctx context.Context, adminURL string, every time.Duration) *Monitor {
	m := &Monitor{done: make(chan struct{})}
	client := &http.Client{Timeout: 2 * time.Second}
	go func() {
		defer close(m.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			h := look(ctx, client, strings.TrimRight(adminURL, "/"))
			if ctx.Err() != nil {
				return
			}
			m.mu.Lock()
			m.samples = append(m.samples, h)
			m.mu.Unlock()
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return m
}

// Samples waits for the monitor to stop (its ctx ended) and returns them.
func (m *Monitor) Samples() []Health {
	<-m.done
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.samples
}

func look(ctx context.Context, c *http.Client, admin string) Health {
	h := Health{T: time.Now(), Ready: "down", StoreUp: -1, RedisUp: -1}
	if req, err := http.NewRequestWithContext(ctx, http.MethodGet, admin+"/readyz", nil); err == nil {
		if res, err := c.Do(req); err == nil {
			var body struct {
				Status string `json:"status"`
			}
			_ = json.NewDecoder(io.LimitReader(res.Body, 8<<10)).Decode(&body)
			res.Body.Close()
			h.Ready = body.Status
			if h.Ready == "" {
				h.Ready = "unavailable"
			}
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, admin+"/metrics", nil)
	if err != nil {
		return h
	}
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	res, err := c.Do(req)
	if err != nil {
		return h
	}
	defer res.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(res.Body)
	if err != nil {
		return h
	}
	if f := fams["hal9_backend_up"]; f != nil {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "backend" {
					switch l.GetValue() {
					case "store":
						h.StoreUp = m.GetGauge().GetValue()
					case "redis":
						h.RedisUp = m.GetGauge().GetValue()
					}
				}
			}
		}
	}
	if f := fams["hal9_circuit_breaker_state"]; f != nil {
		for _, m := range f.GetMetric() {
			if m.GetGauge().GetValue() == 2 {
				h.BreakersOpen++
			}
		}
	}
	if f := fams["hal9_llm_requests_total"]; f != nil {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "outcome" && l.GetValue() == "circuit_open" {
					h.CircuitOpenCalls += m.GetCounter().GetValue()
				}
			}
		}
	}
	return h
}
