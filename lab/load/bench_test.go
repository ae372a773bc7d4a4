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

// hotRequests are the hot path's requests: a bare GET, and a POST with a
// body and headers (a signal's).
var hotRequests = []struct {
	name string
	req  *Request
}{
	{"get", &Request{Method: "GET", Path: "/", Op: "get", Discard: true}},
	{"post", &Request{Method: "POST", Path: "/api/v1/signals", Op: "signal", Body: []byte(`{"content":"plan route","layer":"L2"}`),
		Header: map[string][]string{"Content-Type": {"application/json"}, "Authorization": {"Bearer abc.def.ghi"}}}},
}

// cannedClient is a VU's client of the canned server, closed with the test.
func cannedClient(tb testing.TB) *Client {
	s := newSink(NewRegistry(), mustProm())
	c := newClient(parseTarget(cannedOK(tb), nil), nil, s.recorder("hot"))
	tb.Cleanup(c.close)
	return c
}

// cannedVU is a VU as the executors run it, whose iteration is one GET
// of the canned server and one check.
func cannedVU(tb testing.TB) (*vuHandle, *scenarioRun) {
	req := hotRequests[0].req
	wl := IterationFunc(func(ctx context.Context, it *Iter) error {
		res, err := it.HTTP.Do(ctx, req)
		it.Check("status 200", err == nil && res.Status == 200)
		return err
	})
	e := &engine{opts: Options{Workload: wl}, log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		sink: newSink(NewRegistry(), mustProm()), tgt: parseTarget(cannedOK(tb), nil)}
	r := &scenarioRun{cfg: Scenario{Name: "hot"}, e: e}
	v, err := r.newVU(0)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(v.client.close)
	return v, r
}

// TestHotPathAllocs holds the allocations of the VU's hot path down: a
// GET, a POST with headers, and a whole iteration (a request, a check,
// the samples). They were 42–49 per request with net/http's client.
func TestHotPathAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	c := cannedClient(t)
	ctx := context.Background()
	for _, tt := range hotRequests {
		n := testing.AllocsPerRun(500, func() {
			if res, err := c.Do(ctx, tt.req); err != nil || res.Status != 200 {
				t.Fatal(err, res.Status)
			}
		})
		if n > 0.5 {
			t.Errorf("%s: %.2f allocations per request, want none", tt.name, n)
		}
	}
	v, r := cannedVU(t)
	if n := testing.AllocsPerRun(500, func() { v.iterate(ctx, time.Time{}) }); n > 0.5 || r.errors.Load() > 0 {
		t.Errorf("an iteration: %.2f allocations, %d errors; want none", n, r.errors.Load())
	}
}

// BenchmarkClientDo is one recorded request through a VU's client on
// loopback: its time and allocations per request (TestHotPathAllocs
// holds the allocations down).
func BenchmarkClientDo(b *testing.B) {
	c := cannedClient(b)
	ctx := context.Background()
	for _, bc := range hotRequests {
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
	v, r := cannedVU(b)
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
