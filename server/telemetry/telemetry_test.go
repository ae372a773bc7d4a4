package telemetry

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestNewRegistry(t *testing.T) {
	reg := NewRegistry(Build{Version: "1.2.3", Revision: "abc"})
	want := `
# HELP hal9_build_info Always 1; the labels identify the running build.
# TYPE hal9_build_info gauge
hal9_build_info{goversion="` + runtime.Version() + `",revision="abc",version="1.2.3"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "hal9_build_info"); err != nil {
		t.Fatal(err)
	}
	// One series each: the count is the number of families present.
	names := []string{"hal9_build_info", "go_goroutines", "go_memstats_alloc_bytes", "process_cpu_seconds_total"}
	if n, err := testutil.GatherAndCount(reg, names...); err != nil || n != len(names) {
		t.Errorf("%d of the families %v exported (%v)", n, names, err)
	}
}

func TestRegisterCapacity(t *testing.T) {
	for _, rps := range []float64{0, 2343} {
		reg := NewRegistry(Build{})
		RegisterCapacity(reg, rps)
		n, err := testutil.GatherAndCount(reg, CapacityMetric)
		if err != nil {
			t.Fatal(err)
		}
		if want := map[bool]int{true: 1, false: 0}[rps > 0]; n != want {
			t.Fatalf("rps %g: %d series of %s, want %d (unset: absent, not 0)", rps, n, CapacityMetric, want)
		}
		if rps > 0 {
			want := "# HELP " + CapacityMetric + " Rated capacity of this server: the request rate it carries within its SLO on its machine class (the knee `make capacity` measures), from --capacity-rps.\n# TYPE " + CapacityMetric + " gauge\n" + CapacityMetric + " 2343\n"
			if err := testutil.GatherAndCompare(reg, strings.NewReader(want), CapacityMetric); err != nil {
				t.Error(err)
			}
		}
	}
}

func TestNewLogger(t *testing.T) {
	tests := []struct {
		level   string
		logs    bool // does an info line appear?
		wantErr bool
	}{
		{"info", true, false},
		{"DEBUG", true, false},
		{"warn", false, false},
		{"error", false, false},
		{"loud", false, true},
	}
	for _, tt := range tests {
		var buf bytes.Buffer
		l, err := NewLogger(&buf, tt.level)
		if tt.wantErr {
			if err == nil || !strings.Contains(err.Error(), "debug, info, warn or error") {
				t.Errorf("%s: err = %v", tt.level, err)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		l.Info("hello", "k", 1)
		if got := buf.Len() > 0; got != tt.logs {
			t.Errorf("%s: logged = %v", tt.level, got)
		}
		if tt.logs {
			var m map[string]any
			if err := json.Unmarshal(buf.Bytes(), &m); err != nil || m["msg"] != "hello" {
				t.Errorf("%s: not JSON: %q", tt.level, buf.String())
			}
		}
	}
}

func TestStartProfilingBadURL(t *testing.T) {
	for _, u := range []string{"", "localhost:4040", "ftp://x", "http://"} {
		if _, err := StartProfiling(ProfilingOptions{ServerURL: u}); err == nil {
			t.Errorf("%q: no error", u)
		}
	}
}

func TestStartProfilingUploads(t *testing.T) {
	var mu sync.Mutex
	var paths []string
	var query string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		paths = append(paths, r.URL.Path)
		query = r.URL.RawQuery
		mu.Unlock()
	}))
	defer srv.Close()
	stop, err := StartProfiling(ProfilingOptions{ServerURL: srv.URL, Version: "v9", Instance: "test"})
	if err != nil {
		t.Fatal(err)
	}
	x := 0
	for i := range 200000 {
		x += i % 7
	}
	_ = x
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(paths) == 0 || paths[0] != "/ingest" {
		t.Fatalf("uploads = %v", paths)
	}
	if !strings.Contains(query, "hal9") || !strings.Contains(query, "v9") {
		t.Fatalf("query = %s", query)
	}
}
