//go:build linux

package livecheck

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hal9-lab/hal9-lab/lab/prom"
)

const root = "../.."

func TestDashboardsAndRulesUseExportedMetrics(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts the server; skipped with -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	api, admin := startServer(ctx, t)
	sendTraffic(ctx, t, "http://"+api)

	exported, err := prom.Scrape(ctx, "http://"+admin+"/metrics")
	if err != nil {
		t.Fatal(err)
	}
	exprs, err := prom.ProjectExprs(root)
	if err != nil {
		t.Fatal(err)
	}
	rules, _ := filepath.Glob(filepath.Join(root, "alerts", "*.rules.yml"))
	recorded, err := prom.RecordedNames(rules...)
	if err != nil {
		t.Fatal(err)
	}
	// The lab's hal9lab_* metrics come from the load engine, not the server:
	// check them against the names lab/load defines.
	lab, err := labMetricNames(filepath.Join(root, "lab", "load"))
	if err != nil {
		t.Logf("NOTE: hal9lab_* metrics not checked: %v", err)
	}
	skip := func(name string) bool {
		return strings.HasPrefix(name, "hal9lab_") && lab == nil
	}
	for n := range lab {
		exported[n] = true
	}
	missing, err := prom.MissingMetrics(exprs, exported, recorded, skip)
	if err != nil {
		t.Fatal(err)
	}
	if len(missing) > 0 {
		t.Errorf("%d metric names used by dashboards or rules are not exported by the running server (admin /metrics) or the lab engine:\n%s",
			len(missing), prom.FormatMissing(missing))
	}
	t.Logf("checked %d expressions against %d exported series names", len(exprs), len(exported))
}

// startServer builds cmd/hal9 and runs it on free loopback ports with a temp
// SQLite database and no simulated LLM latency; it stops at cleanup.
func startServer(ctx context.Context, t *testing.T) (api, admin string) {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "hal9")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/hal9")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/hal9: %v\n%s", err, out)
	}
	api, admin = freeAddr(t), freeAddr(t)
	srv := exec.Command(bin, "serve", "--addr", api, "--admin-addr", admin,
		"--data-dir", t.TempDir(), "--jwt-secret", "livecheck-secret-livecheck-secret",
		"--bcrypt-cost", "4", "--log-level", "warn",
		"--capacity-rps", "100") // any rating: the capacity rules and panel read its gauge
	srv.Env = append(os.Environ(), "HAL9_LLM_LATENCY_SCALE=0", "HAL9_DATABASE_URL=", "HAL9_REDIS_URL=")
	var logs bytes.Buffer
	srv.Stdout, srv.Stderr = &logs, &logs
	srv.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := srv.Start(); err != nil {
		t.Fatalf("start hal9: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- srv.Wait() }()
	t.Cleanup(func() {
		_ = syscall.Kill(-srv.Process.Pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			_ = syscall.Kill(-srv.Process.Pid, syscall.SIGKILL)
			<-exited
		}
		if t.Failed() {
			t.Logf("server log:\n%s", logs.String())
		}
	})
	waitReady(ctx, t, "http://"+admin+"/readyz", exited)

	return api, admin
}

func freeAddr(t *testing.T) string {
	t.Helper()
	p, err := prom.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(p))
}

func waitReady(ctx context.Context, t *testing.T, url string, exited <-chan error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case err := <-exited:
			t.Fatalf("hal9 exited before it was ready: %v", err)
		case <-ctx.Done():
			t.Fatalf("hal9 not ready at %s: %v", url, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// sendTraffic exercises the routes whose metrics the dashboards read:
// auth (including a failure), signals on several layers (misses, then hits),
// status and neurons.
func sendTraffic(ctx context.Context, t *testing.T, base string) (token string) {
	t.Helper()
	call := func(method, path, token string, body any, want int) []byte {
		t.Helper()
		var rd *bytes.Reader
		if body != nil {
			b, _ := json.Marshal(body)
			rd = bytes.NewReader(b)
		} else {
			rd = bytes.NewReader(nil)
		}
		req, err := http.NewRequestWithContext(ctx, method, base+path, rd)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		var buf bytes.Buffer
		_, _ = buf.ReadFrom(resp.Body)
		if resp.StatusCode != want {
			t.Fatalf("%s %s: HTTP %d, want %d: %s", method, path, resp.StatusCode, want, buf.String())
		}
		return buf.Bytes()
	}
	user := map[string]string{"username": "livecheck", "email": "livecheck@example.com", "password": "livecheck-password"}
	call(http.MethodPost, "/api/v1/auth/register", "", user, http.StatusCreated)
	call(http.MethodPost, "/api/v1/auth/login", "", map[string]string{"username": "livecheck", "password": "wrong-password"}, http.StatusUnauthorized)
	var login struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(call(http.MethodPost, "/api/v1/auth/login", "", map[string]string{"username": "livecheck", "password": user["password"]}, http.StatusOK), &login); err != nil || login.AccessToken == "" {
		t.Fatalf("login answer without access_token (err %v)", err)
	}
	for round := 0; round < 2; round++ { // the second round hits the cache
		for _, layer := range []string{"L1", "L3", "L5"} {
			call(http.MethodPost, "/api/v1/signals", login.AccessToken, map[string]string{"content": "livecheck " + layer, "layer": layer}, http.StatusOK)
		}
	}
	call(http.MethodGet, "/api/v1/status", "", nil, http.StatusOK)
	call(http.MethodGet, "/api/v1/neurons", login.AccessToken, nil, http.StatusOK)
	return login.AccessToken
}

// signal sends one signal (n picks the content and layer) and ignores the
// answer: background traffic for the Prometheus test.
func signal(ctx context.Context, base, token string, n int) {
	b, _ := json.Marshal(map[string]string{"content": fmt.Sprintf("background %d", n), "layer": fmt.Sprintf("L%d", n%5+1)})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/api/v1/signals", bytes.NewReader(b))
	if err != nil {
		return
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
	}
}

// labMetricNames reads the hal9lab_* metric definitions from the load
// engine's source (the engine keeps its registry private): the Name of every
// prometheus.{Counter,Gauge,Histogram,Summary}Opts literal, histograms
// expanded to their _bucket/_sum/_count series.
func labMetricNames(dir string) (map[string]bool, error) {
	fset := token.NewFileSet()
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("load engine not there yet: %w", err)
	}
	names := map[string]bool{}
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".go") || strings.HasSuffix(e.Name(), "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(dir, e.Name()), nil, 0)
		if err != nil {
			return nil, fmt.Errorf("parse %s: %w", e.Name(), err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			cl, ok := n.(*ast.CompositeLit)
			if !ok {
				return true
			}
			sel, ok := cl.Type.(*ast.SelectorExpr)
			if !ok || !strings.HasSuffix(sel.Sel.Name, "Opts") {
				return true
			}
			for _, el := range cl.Elts {
				kv, ok := el.(*ast.KeyValueExpr)
				if !ok {
					continue
				}
				if k, ok := kv.Key.(*ast.Ident); !ok || k.Name != "Name" {
					continue
				}
				lit, ok := kv.Value.(*ast.BasicLit)
				if !ok || lit.Kind != token.STRING {
					continue
				}
				name, err := strconv.Unquote(lit.Value)
				if err != nil || !strings.HasPrefix(name, "hal9lab_") {
					continue
				}
				switch sel.Sel.Name {
				case "HistogramOpts":
					names[name+"_bucket"], names[name+"_sum"], names[name+"_count"] = true, true, true
				case "SummaryOpts":
					names[name], names[name+"_sum"], names[name+"_count"] = true, true, true
				default:
					names[name] = true
				}
			}
			return true
		})
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("no hal9lab_* metric definitions in %s", dir)
	}
	return names, nil
}
