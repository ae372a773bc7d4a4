//go:build linux

package livecheck

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hal9-lab/hal9-lab/lab/prom"
)

// expectedNoData are the expressions that have no data against a bare server
// in this test, and why. Anything else without data fails the test.
var expectedNoData = map[string]string{
	"hal9lab_":               "no lab engine runs in this test (the Load lab dashboard's lab side)",
	"go_gc_gomemlimit_bytes": "GOMEMLIMIT is unset; the panel draws the limit only when it is set",
	`backend="redis"`:        "the server in this test runs without Redis (hal9_backend_up has no redis series)",
}

// TestQueriesReturnDataInPrometheus is the tiny-scale version of
// `hal9-lab run --prometheus`: a real Prometheus scrapes the real server
// every second (with the rules loaded) while signals flow, then every panel
// query and every rule expression is evaluated over the run.
func TestQueriesReturnDataInPrometheus(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the server and Prometheus; skipped with -short")
	}
	if _, err := exec.LookPath("prometheus"); err != nil {
		if os.Getenv("HAL9_REQUIRE_INFRA") == "1" {
			t.Fatalf("prometheus not on PATH and HAL9_REQUIRE_INFRA=1: %v", err)
		}
		t.Skipf("prometheus not on PATH (apt-get install prometheus): %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	api, admin := startServer(ctx, t)
	rules, _ := filepath.Glob(filepath.Join(root, "alerts", "*.rules.yml"))
	p, err := prom.Start(ctx, prom.Options{
		Targets:   []prom.Target{{Job: "hal9", Addr: admin}},
		RuleFiles: rules,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop(context.Background())
	start := time.Now()

	// Traffic while Prometheus scrapes: one token, then signals until done.
	tok := sendTraffic(ctx, t, "http://"+api)
	trafficCtx, stopTraffic := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; trafficCtx.Err() == nil && i < 2000; i++ {
			signal(trafficCtx, "http://"+api, tok, i%7)
			time.Sleep(20 * time.Millisecond)
		}
	}()
	waitCtx, waitCancel := context.WithTimeout(ctx, 60*time.Second)
	err = p.WaitForScrapes(waitCtx, []string{"hal9"}, 8)
	waitCancel()
	stopTraffic()
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second) // let the rules evaluate on the last scrapes
	end := time.Now()

	exprs, err := prom.ProjectExprs(root)
	if err != nil {
		t.Fatal(err)
	}
	res := p.CheckExpressions(ctx, exprs, start, end, prom.CheckOptions{
		Vars: map[string]string{"__rate_interval": "4s", "__range": "1m", "job": "hal9"},
		Step: time.Second,
	})
	var noData []string
	for _, r := range res {
		switch {
		case r.Err != nil:
			t.Errorf("%s: %v", r.Source, r.Err)
		case r.NoData():
			if why := expectedWhy(r.Evaluated); why != "" {
				t.Logf("no data, expected (%s): %s", why, r.Source)
				continue
			}
			noData = append(noData, r.Source+"\n    "+r.Evaluated)
		}
	}
	sort.Strings(noData)
	if len(noData) > 0 {
		t.Errorf("%d of %d expressions returned no data over the run:\n%s", len(noData), len(res), strings.Join(noData, "\n"))
	}
	t.Logf("evaluated %d expressions over %s", len(res), end.Sub(start).Round(time.Second))
}

func expectedWhy(expr string) string {
	for k, why := range expectedNoData {
		if strings.Contains(expr, k) {
			return why
		}
	}
	return ""
}
