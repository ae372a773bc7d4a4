package app

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// backendProbeEvery is how often hal9_backend_up is refreshed: the alerts
// HAL9StoreUnavailable and HAL9RedisUnavailable read it.
const backendProbeEvery = time.Second

// startBackendProbe exports hal9_backend_up{backend="store"|"redis"} (1
// answering, 0 not) and refreshes it every second with a ping bounded to
// one second, so an outage shows within about two seconds whatever the
// traffic (a Redis outage fails no request: the process tier answers).
func (a *Server) startBackendProbe(ctx context.Context) {
	up := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "hal9_backend_up",
		Help: "Whether a backend answered the last probe (1) or not (0): backend=store (the database) or redis.",
	}, []string{"backend"})
	a.Registry.MustRegister(up)
	probes := map[string]func(context.Context) error{"store": a.Store.Ping}
	if a.Redis != nil {
		probes["redis"] = a.Redis.Healthy
	}
	probe := func() {
		for name, ping := range probes {
			pctx, cancel := context.WithTimeout(ctx, time.Second)
			v := 1.0
			if ping(pctx) != nil {
				v = 0
			}
			cancel()
			if ctx.Err() == nil {
				up.WithLabelValues(name).Set(v)
			}
		}
	}
	probe()
	a.every(ctx, backendProbeEvery, probe)
}

// every runs fn every interval in the background until ctx ends.
func (a *Server) every(ctx context.Context, interval time.Duration, fn func()) {
	a.bg.Add(1)
	go func() {
		defer a.bg.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				fn()
			}
		}
	}()
}
