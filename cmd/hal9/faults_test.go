package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// runServe runs `hal9 serve` with args until it exits (bounded).
func runServe(t *testing.T, args ...string) (int, string, time.Duration) {
	t.Helper()
	var stderr syncBuffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	code := run(ctx, append([]string{"serve", "--log-level", "warn", "--jwt-secret", strings.Repeat("j", 32)}, args...), io.Discard, &stderr, envFrom(nil))
	return code, stderr.String(), time.Since(start)
}

// A taken port fails before anything else: the message names the address
// and the database was neither created nor migrated.
func TestServePortTakenFailsFirst(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	dir := t.TempDir()
	db := filepath.Join(dir, "sub", "hal9.db")
	for _, c := range []struct{ name, addr, admin, db string }{
		{"api port", taken.Addr().String(), freeAddr(t), "sqlite://" + db},
		{"admin port", freeAddr(t), taken.Addr().String(), "sqlite://" + db},
		// A database that does not answer is never reached either.
		{"api port, database down", taken.Addr().String(), freeAddr(t), "postgres://postgres@" + freeAddr(t) + "/x?connect_timeout=10"},
	} {
		code, stderr, took := runServe(t, "--addr", c.addr, "--admin-addr", c.admin, "--database-url", c.db, "--data-dir", dir)
		if code != 1 || !strings.Contains(stderr, taken.Addr().String()) || !strings.Contains(stderr, "ss -ltnp") {
			t.Errorf("%s: exit %d, stderr %q; want 1 and the taken address", c.name, code, stderr)
		}
		if took > 5*time.Second || strings.Contains(stderr, "does not answer") {
			t.Errorf("%s: the store was tried before the bind (took %s): %s", c.name, took, stderr)
		}
	}
	if _, err := os.Stat(filepath.Dir(db)); err == nil {
		t.Errorf("the data directory %s was created although the port was taken", filepath.Dir(db))
	}
}

// PostgreSQL down at start: hal9 exits 1 with what to do.
func TestServePostgresDownAtStart(t *testing.T) {
	down := freeAddr(t) // nothing listens there
	code, stderr, _ := runServe(t, "--addr", freeAddr(t), "--admin-addr", freeAddr(t), "--database-url", "postgres://postgres@"+down+"/hal9?connect_timeout=2")
	if code != 1 || !strings.Contains(stderr, "does not answer") || !strings.Contains(stderr, "start it") || !strings.Contains(stderr, down) {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
}

// The LLM faults endpoint lives on the admin listener only; a fault set
// there changes the answers of the running server.
func TestAdminLLMFaults(t *testing.T) {
	in := startServe(t, map[string]string{"HAL9_LLM_LATENCY_SCALE": "0"})
	put := func(base, body string) (int, string) {
		req, _ := http.NewRequest(http.MethodPut, "http://"+base+"/admin/llm/faults", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	if code, _ := put(in.api, `{"error_rate":1}`); code != http.StatusNotFound {
		t.Errorf("PUT /admin/llm/faults on the API listener: %d, want 404", code)
	}
	for _, bad := range []string{`{"error_rate":2}`, `{"latency_scale":-1}`, `{"rate_limit_rpm":-5}`, `{"error_rate":"x"}`, `{"nope":1}`} {
		if code, body := put(in.admin, bad); code != http.StatusBadRequest || !strings.Contains(body, "message") {
			t.Errorf("PUT %s: %d %s, want 400 with a message", bad, code, body)
		}
	}
	tok := login(t, in.api, "faultuser")
	if r := call(t, "POST", "http://"+in.api+"/api/v1/signals", tok, map[string]string{"content": "before", "layer": "L1"}); r.status != 200 {
		t.Fatalf("signal before the fault: %d", r.status)
	}
	if code, body := put(in.admin, `{"error_rate":1}`); code != 200 || !strings.Contains(body, `"error_rate":1`) {
		t.Fatalf("PUT error_rate 1: %d %s", code, body)
	}
	r := call(t, "POST", "http://"+in.api+"/api/v1/signals", tok, map[string]string{"content": "during", "layer": "L1"})
	if r.status != 503 || r.header.Get("Retry-After") == "" {
		t.Errorf("signal during error_rate 1: %d %v, want 503 with Retry-After", r.status, r.json)
	}
	if code, _ := put(in.admin, `{"error_rate":0}`); code != 200 {
		t.Fatal("reset")
	}
	res, err := http.Get("http://" + in.admin + "/admin/llm/faults")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if !bytes.Contains(b, []byte(`"error_rate":0`)) || !bytes.Contains(b, []byte(`"latency_scale":0`)) {
		t.Errorf("GET /admin/llm/faults = %s", b)
	}
	// hal9_backend_up{backend="store"} is exported and 1.
	if v := scrape(t, in.admin)[`hal9_backend_up{backend="store"}`]; v != 1 {
		t.Errorf("hal9_backend_up{backend=store} = %v, want 1", v)
	}
}
