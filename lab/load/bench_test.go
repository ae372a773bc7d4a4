package load

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/hal9-lab/hal9-lab/lab/load/loadtest"
)

var okResponse = loadtest.Response(200, "ok\n", "Content-Type: text/plain")

// cannedOK answers every request with a 3-byte 200: the engine's own
// costs stand alone (the canned server allocates nothing).
func cannedOK(tb testing.TB) string {
	return loadtest.Canned(tb, func(loadtest.Request, []byte) []byte { return okResponse })
}

// TestHotPathAllocs holds a request's allocations on the VU's hot path
// down: a GET, a POST with headers, and a whole iteration (a request,
// a check, the iteration's samples). They were 58 per request with
// net/http's client.
func TestHotPathAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	url := cannedOK(t)
	s := newSink(NewRegistry(), mustProm())
	c := newClient(parseTarget(url, nil), nil, s.recorder("allocs"))
	defer c.close()
	ctx := context.Background()
	get := &Request{Method: "GET", Path: "/", Op: "get", Discard: true}
	post := &Request{Method: "POST", Path: "/api/v1/signals", Op: "signal", Body: []byte(`{"content":"plan","layer":"L2"}`),
		Header: map[string][]string{"Content-Type": {"application/json"}, "Authorization": {"Bearer abc"}}}
	for _, tt := range []struct {
		name string
		req  *Request
	}{{"get", get}, {"post", post}} {
		n := testing.AllocsPerRun(500, func() {
			if res, err := c.Do(ctx, tt.req); err != nil || res.Status != 200 {
				t.Fatal(err, res.Status)
			}
		})
		if n > 0.5 {
			t.Errorf("%s: %.2f allocations per request, want none", tt.name, n)
		}
	}
}

// BenchmarkClientDo is one recorded request through a VU's client on
// loopback: its time and allocations per request (TestHotPathAllocs
// holds the allocations down).
func BenchmarkClientDo(b *testing.B) {
	url := cannedOK(b)
	s := newSink(NewRegistry(), mustProm())
	c := newClient(parseTarget(url, nil), nil, s.recorder("bench"))
	defer c.close()
	ctx := context.Background()
	req := &Request{Method: "GET", Path: "/", Op: "bench", Discard: true}
	post := &Request{Method: "POST", Path: "/api/v1/signals", Op: "signal", Body: []byte(`{"content":"plan route","layer":"L2"}`),
		Header: map[string][]string{"Content-Type": {"application/json"}, "Authorization": {"Bearer abc.def.ghi"}}}
	for _, bc := range []struct {
		name string
		req  *Request
	}{{"get", req}, {"post", post}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				res, err := c.Do(ctx, bc.req)
				if err != nil || res.Status != 200 {
					b.Fatal(err, res.Status)
				}
			}
		})
	}
}

// BenchmarkVUIteration is one iteration of a VU (one GET and one check)
// as the executors run it: client, recording, iteration samples.
func BenchmarkVUIteration(b *testing.B) {
	url := cannedOK(b)
	req := &Request{Method: "GET", Path: "/", Op: "bench", Discard: true}
	wl := IterationFunc(func(ctx context.Context, it *Iter) error {
		res, err := it.HTTP.Do(ctx, req)
		it.Check("status 200", err == nil && res.Status == 200)
		return err
	})
	e := &engine{opts: Options{Workload: wl}, log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		sink: newSink(NewRegistry(), mustProm()), tgt: parseTarget(url, nil)}
	r := &scenarioRun{cfg: Scenario{Name: "bench"}, e: e}
	v, err := r.newVU(0)
	if err != nil {
		b.Fatal(err)
	}
	defer v.client.close()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		v.iterate(ctx, time.Time{})
	}
	if r.errors.Load() > 0 {
		b.Fatalf("%d iterations failed", r.errors.Load())
	}
}

// BenchmarkRecordHTTP is the metrics side alone.
func BenchmarkRecordHTTP(b *testing.B) {
	s := newSink(NewRegistry(), mustProm())
	r := s.recorder("bench")
	k := httpKey{op: "get", name: "/", method: "GET", status: 200}
	b.ReportAllocs()
	for b.Loop() {
		r.httpSample(k, 1234567, 1000000, 100, 200)
	}
}
