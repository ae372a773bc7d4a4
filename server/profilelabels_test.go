package server

import (
	"context"
	"net/http"
	"net/http/httptest"
	"runtime/pprof"
	"testing"
)

func TestProfileLabels(t *testing.T) {
	for _, off := range []bool{false, true} {
		s := &Server{d: Deps{NoProfileLabels: off}}
		var got string
		var ok bool
		h := s.profileLabels("/api/v1/signals", func(w http.ResponseWriter, r *http.Request) {
			got, ok = pprof.Label(r.Context(), labelRoute)
		})
		h(httptest.NewRecorder(), httptest.NewRequest("POST", "/api/v1/signals", nil))
		if want := !off; ok != want || (want && got != "/api/v1/signals") {
			t.Errorf("labels off=%v: route label %q (set %v)", off, got, ok)
		}
	}
	// Through the router: every API route carries its template, the one
	// hal9_http_requests_total counts it under.
	rt := newRoutes((&Server{}).profileLabels)
	var seen string
	rt.handle("GET /api/v1/neurons/{id}", func(w http.ResponseWriter, r *http.Request) {
		seen, _ = pprof.Label(r.Context(), labelRoute)
	})
	rt.build().ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/api/v1/neurons/l3-design-1", nil))
	if seen != "/api/v1/neurons/{id}" {
		t.Errorf("route label through the mux %q, want the template", seen)
	}
	// labelLayerOf must keep the route label while adding the layer.
	ctx := pprof.WithLabels(context.Background(), pprof.Labels(labelRoute, "/api/v1/signals"))
	pprof.SetGoroutineLabels(ctx)
	defer pprof.SetGoroutineLabels(context.Background())
	(&Server{}).labelLayerOf(ctx, "L3") // must not panic, and is a no-op when off
	(&Server{d: Deps{NoProfileLabels: true}}).labelLayerOf(ctx, "L3")
}
