package faults

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/hal9-lab/hal9-lab/lab/load"
)

// setupWorkload takes setup before its iterations start.
type setupWorkload struct {
	load.IterationFunc
	setup time.Duration
}

func (w setupWorkload) Setup(ctx context.Context, env *load.Env) error {
	return load.Sleep(ctx, w.setup)
}

// TestTimeline: the clock starts when the workload's setup is done (not
// when the timeline does), every request of the run is recorded, and Stop
// hands Analyze the fault, the requests, the health samples and the end.
func TestTimeline(t *testing.T) {
	var mu sync.Mutex
	var putAt []time.Time
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/admin/llm/faults" && r.Method == http.MethodPut {
			mu.Lock()
			putAt = append(putAt, time.Now())
			mu.Unlock()
		}
		_, _ = w.Write([]byte(`{"error_rate":0,"latency_scale":1,"rate_limit_rpm":0}`))
	}))
	defer srv.Close()
	const setup = 300 * time.Millisecond
	specs := []Spec{{At: 200 * time.Millisecond, Duration: 300 * time.Millisecond, Target: LLM, Kind: "error-rate", Rate: 0.5}}
	w := setupWorkload{IterationFunc: func(ctx context.Context, it *load.Iter) error {
		_, err := it.HTTP.Do(ctx, &load.Request{Method: http.MethodGet, Path: "/api/v1/status", Op: "status", Discard: true})
		return err
	}, setup: setup}
	begin := time.Now()
	tl := StartTimeline(context.Background(), TimelineOptions{Specs: specs, Workload: w, Watch: srv.URL, Env: Env{AdminURLs: []string{srv.URL}}})
	plan := &load.Plan{Name: "t", Scenarios: []load.Scenario{{Name: "t", Executor: load.ConstantArrivalRate, Rate: 20, TimeUnit: time.Second,
		Duration: time.Second, PreAllocatedVUs: 2, MaxVUs: 4, GracefulStop: time.Second}}}
	if _, err := load.Run(context.Background(), plan, load.Options{Target: srv.URL, Workload: tl.Workload(), Transport: tl.Transport(), RunID: "timeline"}); err != nil {
		t.Fatal(err)
	}
	in := tl.Stop()
	if len(in.Records) != 1 || in.Records[0].Err != nil || in.Records[0].Injected.IsZero() || in.Records[0].Healed.IsZero() {
		t.Fatalf("records %+v", in.Records)
	}
	if at := in.Records[0].Injected.Sub(begin); at < setup+200*time.Millisecond {
		t.Errorf("the fault was injected %s after the timeline started: before the setup (%s) and its at (200ms) had passed", at, setup)
	}
	mu.Lock()
	puts := len(putAt)
	mu.Unlock()
	if puts != 2 {
		t.Errorf("%d PUTs to the admin listener, want the fault and its undo", puts)
	}
	if len(in.Requests) < 15 || len(in.Health) == 0 || in.End.Before(in.Records[0].Healed) {
		t.Errorf("%d requests, %d health samples, end %v (healed %v)", len(in.Requests), len(in.Health), in.End, in.Records[0].Healed)
	}
	if res := Analyze(in); len(res) != 1 || res[0].Tried == 0 {
		t.Errorf("verdicts %+v", res)
	}
}

// TestTimelineStartAt: with StartAt ahead of the setup, the clock starts
// there.
func TestTimelineStartAt(t *testing.T) {
	started := make(chan time.Time, 1)
	at := time.Now().Add(time.Hour)
	s := &startSignal{Workload: load.IterationFunc(func(context.Context, *load.Iter) error { return nil }), started: started, at: at}
	if err := s.Setup(context.Background(), &load.Env{}); err != nil {
		t.Fatal(err)
	}
	if got := <-started; !got.Equal(at) {
		t.Errorf("clock starts at %v, want --start-at's %v", got, at)
	}
}

func TestMillisText(t *testing.T) {
	ms := 1500.0
	if MillisText(nil) != "never" || MillisText(&ms) != "1.5s" {
		t.Errorf("%q %q", MillisText(nil), MillisText(&ms))
	}
}
