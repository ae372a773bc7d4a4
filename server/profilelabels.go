package server

import (
	"context"
	"net/http"
	"runtime/pprof"
)

// Profile labels: every API handler runs under the pprof label route (the
// route template, as in hal9_http_requests_total), and a signal's work
// also under layer (its entry layer), so the CPU profiles pyroscope-go
// sends can be split per route: the lab divides each route's CPU time by
// its request count (service demand). Goroutines a handler starts inherit
// the labels. The cost is one context and one small map per request (see
// BenchmarkSignalCachedRoundTrip's labels=off sub-benchmark).
const (
	labelRoute = "route"
	labelLayer = "layer"
)

// profileLabels runs h under the route label unless labels are off.
func (s *Server) profileLabels(route string, h http.HandlerFunc) http.HandlerFunc {
	if s.d.NoProfileLabels {
		return h
	}
	labels := pprof.Labels(labelRoute, route)
	return func(w http.ResponseWriter, r *http.Request) {
		pprof.Do(r.Context(), labels, func(ctx context.Context) { h(w, r.WithContext(ctx)) })
	}
}

// labelLayerOf adds the layer label to the running goroutine (and those it
// starts from now on) for the rest of the request; the route label stays.
func (s *Server) labelLayerOf(ctx context.Context, layer string) {
	if s.d.NoProfileLabels || layer == "" {
		return
	}
	pprof.SetGoroutineLabels(pprof.WithLabels(ctx, pprof.Labels(labelLayer, layer)))
}
