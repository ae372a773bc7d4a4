package load

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
)

// BenchmarkClientDo is one recorded request through the VU client on
// loopback (the engine's per-request cost plus the server's).
func BenchmarkClientDo(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) }))
	defer srv.Close()
	s := newSink(NewRegistry(), mustProm())
	tr := NewTransport(1)
	defer tr.CloseIdleConnections()
	c := newClient(srv.URL, tr, s.recorder("bench"))
	ctx := context.Background()
	req := &Request{Method: "GET", Path: "/", Op: "bench", Discard: true}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Do(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRecordHTTP is the metrics side alone.
func BenchmarkRecordHTTP(b *testing.B) {
	s := newSink(NewRegistry(), mustProm())
	r := s.recorder("bench")
	t := Tags{Scenario: "bench", Op: "get", Name: "/", Method: "GET", Status: "200"}
	b.ReportAllocs()
	for b.Loop() {
		r.httpSample(t, 1234567, 1000000, false, 100, 200)
	}
}
