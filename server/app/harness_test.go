package app

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// testApp is a full server (SQLite in t.TempDir, simulated LLM without
// latency) listening on 127.0.0.1 free ports.
type testApp struct {
	t     testing.TB
	app   *Server
	api   string // http://127.0.0.1:port
	admin string
	stop  func() error // cancels Serve and returns its result
}

func testConfig(t testing.TB) Config {
	cfg := DefaultConfig()
	cfg.Addr, cfg.AdminAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	cfg.LLMLatencyScale = 0
	cfg.LLMSeed = 1
	cfg.BcryptCost = 4
	cfg.RateLimit = 0
	cfg.AuthRateLimit = 0 // every test client is 127.0.0.1; the limiter's own tests turn it on
	cfg.ShutdownDelay = 0
	cfg.JWTSecret = strings.Repeat("k", 32)
	cfg.LogLevel = "error"
	cfg.ShutdownTimeout = 30 * time.Second
	return cfg
}

// openApp opens a full Server from testConfig changed by mutate (nil: as
// is); nothing listens yet. It is closed when the test ends.
func openApp(t testing.TB, mutate func(*Config)) *Server {
	t.Helper()
	cfg := testConfig(t)
	if mutate != nil {
		mutate(&cfg)
	}
	app, err := Open(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { app.Close(context.Background()) })
	return app
}

// startApp is openApp serving on its listeners until the test ends (or
// stop is called).
func startApp(t testing.TB, mutate func(*Config)) *testApp {
	t.Helper()
	app := openApp(t, mutate)
	if err := app.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- app.Serve(ctx) }()
	var stopped atomic.Bool
	var result error
	ta := &testApp{t: t, app: app, api: "http://" + app.APIAddr(), admin: "http://" + app.AdminAddr()}
	ta.stop = func() error {
		if stopped.CompareAndSwap(false, true) {
			cancel()
			result = <-done
		}
		return result
	}
	t.Cleanup(func() { ta.stop() })
	return ta
}

// resp is a decoded answer.
type resp struct {
	Status int
	Header http.Header
	Body   []byte
	JSON   map[string]any
}

func (r resp) errCode() string {
	e, _ := r.JSON["error"].(map[string]any)
	s, _ := e["code"].(string)
	return s
}

func (r resp) errMsg() string {
	e, _ := r.JSON["error"].(map[string]any)
	s, _ := e["message"].(string)
	return s
}

func (r resp) str(key string) string { s, _ := r.JSON[key].(string); return s }

var client = &http.Client{Timeout: 30 * time.Second}

// do sends a request; body is JSON-encoded unless it is a string or []byte.
func (a *testApp) do(method, path string, body any, hdr ...string) resp {
	a.t.Helper()
	return doURL(a.t, method, a.api+path, body, hdr...)
}

func doURL(t testing.TB, method, url string, body any, hdr ...string) resp {
	t.Helper()
	return doWith(t, client, method, url, body, hdr...)
}

// doWith is doURL through the client c.
func doWith(t testing.TB, c *http.Client, method, url string, body any, hdr ...string) resp {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		switch {
		case hdr[i] == "Host": // net/http sends req.Host, not the header
			req.Host = hdr[i+1]
		case hdr[i+1] == "":
			req.Header.Del(hdr[i])
		default:
			req.Header.Set(hdr[i], hdr[i+1])
		}
	}
	res, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	out := resp{Status: res.StatusCode, Header: res.Header, Body: b}
	if strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(b, &out.JSON); err != nil {
			t.Fatalf("%s %s: invalid JSON %q: %v", method, url, b, err)
		}
	}
	return out
}

var userSeq atomic.Int64

// user registers and logs in a fresh user; it returns the access token.
func (a *testApp) user() (token, userID string) {
	a.t.Helper()
	return a.userNamed(fmt.Sprintf("user%d", userSeq.Add(1)))
}

func (a *testApp) userNamed(name string) (token, userID string) {
	a.t.Helper()
	r := a.do("POST", "/api/v1/auth/register", map[string]string{"username": name, "email": name + "@example.com", "password": "password-" + name})
	if r.Status != http.StatusCreated {
		a.t.Fatalf("register: %d %s", r.Status, r.Body)
	}
	r = a.do("POST", "/api/v1/auth/login", map[string]string{"username": name, "password": "password-" + name})
	if r.Status != http.StatusOK || r.str("access_token") == "" {
		a.t.Fatalf("login: %d %s", r.Status, r.Body)
	}
	u := r.JSON["user"].(map[string]any)
	return r.str("access_token"), u["id"].(string)
}

func bearer(tok string) []string { return []string{"Authorization", "Bearer " + tok} }

// signal posts a signal and fails the test on anything but 200.
func (a *testApp) signal(tok, content, layer string) resp {
	a.t.Helper()
	r := a.do("POST", "/api/v1/signals", map[string]string{"content": content, "layer": layer}, bearer(tok)...)
	if r.Status != http.StatusOK {
		a.t.Fatalf("signal: %d %s", r.Status, r.Body)
	}
	return r
}

// scrape reads the admin /metrics.
func (a *testApp) scrape() map[string]*dto.MetricFamily {
	a.t.Helper()
	res, err := client.Get(a.admin + "/metrics")
	if err != nil {
		a.t.Fatal(err)
	}
	defer res.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(res.Body)
	if err != nil {
		a.t.Fatalf("parse /metrics: %v", err)
	}
	return mfs
}

// sum adds the values of a family's series whose labels include want.
func sum(mfs map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	mf, ok := mfs[name]
	if !ok {
		return 0
	}
	total := 0.0
next:
	for _, m := range mf.GetMetric() {
		lbl := map[string]string{}
		for _, lp := range m.GetLabel() {
			lbl[lp.GetName()] = lp.GetValue()
		}
		for k, v := range want {
			if lbl[k] != v {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			total += m.GetCounter().GetValue()
		case m.Gauge != nil:
			total += m.GetGauge().GetValue()
		case m.Histogram != nil:
			total += float64(m.GetHistogram().GetSampleCount())
		case m.Untyped != nil:
			total += m.GetUntyped().GetValue()
		}
	}
	return total
}

func headerFloat(t testing.TB, h http.Header, name string) float64 {
	t.Helper()
	v, err := strconv.ParseFloat(h.Get(name), 64)
	if err != nil {
		t.Fatalf("header %s=%q: %v", name, h.Get(name), err)
	}
	return v
}

func prometheusRegistry() *prometheus.Registry { return prometheus.NewRegistry() }

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

func newRecorder() *httptest.ResponseRecorder { return httptest.NewRecorder() }

func mustRequest(method, target string) *http.Request {
	return httptest.NewRequest(method, target, nil)
}

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	c.Write(&m)
	return m.GetCounter().GetValue()
}
