package prom

import (
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

// Static PromQL checks shared by the dashboard and rule tests and the lab:
// substitute Grafana's template variables, parse, list metric names, find
// counters used outside rate/increase, and strip alert thresholds.

// DefaultVars are the substitutions for Grafana's built-in interval variables.
// Any other $var (the dashboards' $job, $instance, …) becomes ".*" unless
// the caller's map names it: dashboards only use them inside =~ matchers.
func DefaultVars() map[string]string {
	return map[string]string{
		"__rate_interval": "1m",
		"__interval":      "15s",
		"__range":         "1h",
		"__range_s":       "3600",
		"__range_ms":      "3600000",
		"__interval_ms":   "15000",
	}
}

var grafanaVar = regexp.MustCompile(`\$\{(\w+)(?::\w+)?\}|\[\[(\w+)\]\]|\$(\w+)`)

// SubstituteVars replaces Grafana template variables ($name, ${name},
// ${name:fmt}, [[name]]) with vars[name], DefaultVars()[name], or ".*".
func SubstituteVars(expr string, vars map[string]string) string {
	defaults := DefaultVars()
	return grafanaVar.ReplaceAllStringFunc(expr, func(m string) string {
		sub := grafanaVar.FindStringSubmatch(m)
		name := sub[1] + sub[2] + sub[3]
		if v, ok := vars[name]; ok {
			return v
		}
		if v, ok := defaults[name]; ok {
			return v
		}
		return ".*"
	})
}

// Parse parses PromQL after substituting Grafana variables.
func Parse(expr string, vars map[string]string) (parser.Expr, error) {
	e, err := parser.NewParser(parser.Options{}).ParseExpr(SubstituteVars(expr, vars))
	if err != nil {
		return nil, fmt.Errorf("parse PromQL %q: %w", expr, err)
	}
	return e, nil
}

// MetricNames returns the sorted, distinct metric names an expression selects.
func MetricNames(expr string, vars map[string]string) ([]string, error) {
	e, err := Parse(expr, vars)
	if err != nil {
		return nil, err
	}
	set := map[string]bool{}
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			if name := selectorName(vs); name != "" {
				set[name] = true
			}
		}
		return nil
	})
	names := make([]string, 0, len(set))
	for n := range set {
		names = append(names, n)
	}
	sort.Strings(names)
	return names, nil
}

func selectorName(vs *parser.VectorSelector) string {
	if vs.Name != "" {
		return vs.Name
	}
	for _, m := range vs.LabelMatchers {
		if m.Name == labels.MetricName && m.Type == labels.MatchEqual {
			return m.Value
		}
	}
	return ""
}

// IsCounterName says whether a series name is a counter by naming convention:
// a _total counter or a histogram's _bucket/_sum/_count series.
func IsCounterName(name string) bool {
	if strings.Contains(name, ":") { // recording rules are already rates/ratios
		return false
	}
	for _, suf := range []string{"_total", "_bucket", "_sum", "_count"} {
		if strings.HasSuffix(name, suf) {
			return true
		}
	}
	return false
}

var rateFuncs = map[string]bool{"rate": true, "irate": true, "increase": true}

// CountersOutsideRate lists counter series that the expression uses other
// than as rate(x[d]), irate(x[d]) or increase(x[d]): a raw counter's value
// depends on when the process started and is never what a panel means.
func CountersOutsideRate(expr string, vars map[string]string) ([]string, error) {
	e, err := Parse(expr, vars)
	if err != nil {
		return nil, err
	}
	var bad []string
	parser.Inspect(e, func(n parser.Node, path []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok || !IsCounterName(selectorName(vs)) {
			return nil
		}
		if len(path) >= 2 {
			if _, ok := path[len(path)-1].(*parser.MatrixSelector); ok {
				if c, ok := path[len(path)-2].(*parser.Call); ok && rateFuncs[c.Func.Name] {
					return nil
				}
			}
		}
		bad = append(bad, selectorName(vs))
		return nil
	})
	return bad, nil
}

// StripThresholds rewrites an alert expression so it returns the measured
// values instead of only the firing ones: every filtering comparison against
// a number (x > 0.8, 14.4 * 0.001 < x) is replaced by its other side, and a
// comparison of two vectors (x > 0.8 * y) by "x and y". The lab
// uses it to tell "the alert did not fire" from "the expression has no data".
func StripThresholds(expr string, vars map[string]string) (string, error) {
	e, err := Parse(expr, vars)
	if err != nil {
		return "", err
	}
	return strip(e).String(), nil
}

func strip(e parser.Expr) parser.Expr {
	switch n := e.(type) {
	case *parser.ParenExpr:
		n.Expr = strip(n.Expr)
		return n
	case *parser.BinaryExpr:
		n.LHS, n.RHS = strip(n.LHS), strip(n.RHS)
		if n.Op.IsComparisonOperator() && !n.ReturnBool {
			switch {
			case n.RHS.Type() == parser.ValueTypeScalar && n.LHS.Type() == parser.ValueTypeVector:
				return n.LHS
			case n.LHS.Type() == parser.ValueTypeScalar && n.RHS.Type() == parser.ValueTypeVector:
				return n.RHS
			case n.LHS.Type() == parser.ValueTypeVector && n.RHS.Type() == parser.ValueTypeVector:
				// x > 0.8 * budget: keep x where the other side has data too.
				n.Op = parser.LAND
				if n.VectorMatching != nil {
					n.VectorMatching.Card = parser.CardManyToMany
					n.VectorMatching.Include = nil
				}
				return n
			}
		}
		return n
	case *parser.AggregateExpr:
		n.Expr = strip(n.Expr)
		return n
	case *parser.Call:
		for i, a := range n.Args {
			n.Args[i] = strip(a)
		}
		return n
	default:
		return e
	}
}
