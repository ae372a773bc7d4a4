package prom

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
)

func TestProjectExprsListsPanelsAndRules(t *testing.T) {
	exprs, err := ProjectExprs("../..")
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	for _, e := range exprs {
		kinds[e.Kind]++
		if e.Expr == "" || e.Source == "" || e.Name == "" {
			t.Errorf("incomplete %+v", e)
		}
	}
	for _, k := range []string{KindPanel, KindRecord, KindAlert} {
		if kinds[k] == 0 {
			t.Errorf("no %s expressions in the repository (got %v)", k, kinds)
		}
	}
	if _, err := ProjectExprs(t.TempDir()); err == nil || !strings.Contains(err.Error(), "repository root") {
		t.Errorf("empty dir: err = %v", err)
	}
}

func TestReadErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte("{"), 0o644)
	if _, err := DashboardExprs(bad); err == nil || !strings.Contains(err.Error(), "bad.json") {
		t.Errorf("bad JSON: err = %v", err)
	}
	badY := filepath.Join(dir, "bad.rules.yml")
	os.WriteFile(badY, []byte("groups: [:"), 0o644)
	if _, err := RuleExprs(badY); err == nil || !strings.Contains(err.Error(), "bad.rules.yml") {
		t.Errorf("bad YAML: err = %v", err)
	}
	if _, err := RuleExprs(filepath.Join(dir, "missing.yml")); err == nil {
		t.Error("missing file accepted")
	}
}

func TestExportedNamesAndMissingMetrics(t *testing.T) {
	fam := func(name string, typ dto.MetricType) *dto.MetricFamily {
		return &dto.MetricFamily{Name: &name, Type: typ.Enum()}
	}
	exported := ExportedNames(map[string]*dto.MetricFamily{
		"hal9_http_requests_total":           fam("hal9_http_requests_total", dto.MetricType_COUNTER),
		"hal9_http_request_duration_seconds": fam("hal9_http_request_duration_seconds", dto.MetricType_HISTOGRAM),
		"go_goroutines":                      fam("go_goroutines", dto.MetricType_GAUGE),
	})
	exprs := []Expr{
		{Source: "a", Expr: `histogram_quantile(0.99, sum by (le) (rate(hal9_http_request_duration_seconds_bucket[5m])))`},
		{Source: "b", Expr: `sum(rate(hal9_http_requests_total[$__rate_interval])) + hal9:x:ratio + up`},
		{Source: "c", Expr: `hal9_never_total + go_goroutines + hal9_http_request_duration_seconds`},
		{Source: "d", Expr: `hal9lab_vus`},
	}
	missing, err := MissingMetrics(exprs, exported, map[string]bool{"hal9:x:ratio": true}, func(n string) bool { return strings.HasPrefix(n, "hal9lab_") })
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{"hal9_never_total": {"c"}, "hal9_http_request_duration_seconds": {"c"}}
	if !reflect.DeepEqual(missing, want) {
		t.Errorf("missing = %v, want %v", missing, want)
	}
	if s := FormatMissing(missing); !strings.Contains(s, "hal9_never_total, used by:\n    c\n") {
		t.Errorf("FormatMissing: %q", s)
	}
}
