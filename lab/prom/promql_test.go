package prom

import (
	"reflect"
	"strings"
	"testing"
)

func TestSubstituteVars(t *testing.T) {
	tests := []struct{ in, want string }{
		{`rate(x{job=~"$job"}[$__rate_interval])`, `rate(x{job=~"hal9"}[1m])`},
		{`x{instance=~"${instance}"}`, `x{instance=~".*"}`},
		{`x{instance=~"${instance:regex}"}`, `x{instance=~".*"}`},
		{`increase(x[$__range])`, `increase(x[1h])`},
		{`x{a=~"[[job]]"}`, `x{a=~"hal9"}`},
	}
	for _, tt := range tests {
		if got := SubstituteVars(tt.in, map[string]string{"job": "hal9"}); got != tt.want {
			t.Errorf("SubstituteVars(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestMetricNames(t *testing.T) {
	got, err := MetricNames(`sum(rate(a_total{job=~"$job"}[$__rate_interval])) / on() group_left b + {__name__="c"} + hal9:x:ratio`, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"a_total", "b", "c", "hal9:x:ratio"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if _, err := MetricNames("sum(", nil); err == nil {
		t.Error("parse error not reported")
	}
}

func TestCountersOutsideRate(t *testing.T) {
	tests := []struct {
		expr string
		bad  []string
	}{
		{`rate(a_total[5m])`, nil},
		{`increase(a_total[1h]) / irate(b_count[1m])`, nil},
		{`histogram_quantile(0.99, sum by (le) (rate(h_bucket[5m])))`, nil},
		{`a_total`, []string{"a_total"}},
		{`sum(a_total)`, []string{"a_total"}},
		{`delta(a_total[5m])`, []string{"a_total"}},
		{`h_sum / h_count`, []string{"h_sum", "h_count"}},
		{`go_goroutines + hal9:x:rate5m`, nil},
		{`rate(x_total[5m:1m])`, []string{"x_total"}},
	}
	for _, tt := range tests {
		got, err := CountersOutsideRate(tt.expr, nil)
		if err != nil {
			t.Fatalf("%s: %v", tt.expr, err)
		}
		if !reflect.DeepEqual(got, tt.bad) {
			t.Errorf("%s: got %v, want %v", tt.expr, got, tt.bad)
		}
	}
}

func TestStripThresholds(t *testing.T) {
	tests := []struct{ in, want string }{
		{`up{job="hal9"} == 0`, `up{job="hal9"}`},
		{`a / b > 0.9`, `a / b`},
		{`(a > 14.4 * 0.001 and b > 14.4 * 0.001) or (c > 6 * 0.001 and d > 6 * 0.001)`, `(a and b) or (c and d)`},
		{`avg(x == bool 2) > 0.1`, `avg(x == bool 2)`},
		{`0.5 < histogram_quantile(0.99, sum by (le) (rate(h_bucket[5m])))`, `histogram_quantile(0.99, sum by (le) (rate(h_bucket[5m])))`},
		{`a > b`, `a and b`},
		{`a > on (job) group_left () 0.8 * b`, `a and on (job) 0.8 * b`},
	}
	for _, tt := range tests {
		got, err := StripThresholds(tt.in, nil)
		if err != nil {
			t.Fatalf("%s: %v", tt.in, err)
		}
		if strings.Join(strings.Fields(got), " ") != tt.want {
			t.Errorf("StripThresholds(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
