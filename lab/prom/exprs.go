package prom

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"gopkg.in/yaml.v3"
)

// Expr is one PromQL expression of a dashboard panel or a rule, with where it
// came from.
type Expr struct {
	Source string // e.g. `dashboards/hal9-overview.json: panel 3 "Error ratio (5xx)" query A`
	Kind   string // KindPanel, KindVariable, KindRecord or KindAlert
	Name   string // panel title, record name or alert name
	Expr   string
}

// Kinds of Expr.
const (
	KindPanel    = "panel"
	KindVariable = "variable"
	KindRecord   = "record"
	KindAlert    = "alert"
)

// ProjectExprs lists every panel query of root/dashboards/*.json and every
// rule expression of root/alerts/*.rules.yml (root is the repository root).
// Template-variable queries (label_values(...)) are not PromQL and are left out.
func ProjectExprs(root string) ([]Expr, error) {
	dash, err := filepath.Glob(filepath.Join(root, "dashboards", "*.json"))
	if err != nil {
		return nil, fmt.Errorf("list dashboards: %w", err)
	}
	rules, err := filepath.Glob(filepath.Join(root, "alerts", "*.rules.yml"))
	if err != nil {
		return nil, fmt.Errorf("list rule files: %w", err)
	}
	if len(dash) == 0 || len(rules) == 0 {
		return nil, fmt.Errorf("no dashboards/*.json or alerts/*.rules.yml under %q: pass the repository root", root)
	}
	d, err := DashboardExprs(dash...)
	if err != nil {
		return nil, err
	}
	r, err := RuleExprs(rules...)
	if err != nil {
		return nil, err
	}
	return append(d, r...), nil
}

// DashboardJSON is the part of a Grafana dashboard the checks read.
type DashboardJSON struct {
	UID    string      `json:"uid"`
	Title  string      `json:"title"`
	Panels []PanelJSON `json:"panels"`
}

// PanelJSON is one panel (rows carry nested panels when collapsed).
type PanelJSON struct {
	ID          int             `json:"id"`
	Type        string          `json:"type"`
	Title       string          `json:"title"`
	Description string          `json:"description"`
	Datasource  *DatasourceJSON `json:"datasource"`
	FieldConfig struct {
		Defaults struct {
			Unit string `json:"unit"`
		} `json:"defaults"`
	} `json:"fieldConfig"`
	Targets []struct {
		RefID      string          `json:"refId"`
		Expr       string          `json:"expr"`
		Datasource *DatasourceJSON `json:"datasource"`
	} `json:"targets"`
	Panels []PanelJSON `json:"panels"`
}

// DatasourceJSON is a panel's or target's datasource reference.
type DatasourceJSON struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

// ReadDashboard parses one dashboard file.
func ReadDashboard(path string) (DashboardJSON, error) {
	var d DashboardJSON
	b, err := os.ReadFile(path)
	if err != nil {
		return d, fmt.Errorf("read dashboard: %w", err)
	}
	if err := json.Unmarshal(b, &d); err != nil {
		return d, fmt.Errorf("parse dashboard %s: %w", path, err)
	}
	return d, nil
}

// AllPanels flattens rows: every non-row panel, in order.
func (d DashboardJSON) AllPanels() []PanelJSON {
	var out []PanelJSON
	var walk func([]PanelJSON)
	walk = func(ps []PanelJSON) {
		for _, p := range ps {
			if p.Type != "row" {
				out = append(out, p)
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return out
}

// DashboardExprs lists every panel target's expression of the given files.
func DashboardExprs(files ...string) ([]Expr, error) {
	var out []Expr
	for _, f := range files {
		d, err := ReadDashboard(f)
		if err != nil {
			return nil, err
		}
		for _, p := range d.AllPanels() {
			for _, t := range p.Targets {
				if t.Expr == "" {
					continue
				}
				out = append(out, Expr{
					Source: fmt.Sprintf("%s: panel %d %q query %s", rel(f), p.ID, p.Title, t.RefID),
					Kind:   KindPanel, Name: p.Title, Expr: t.Expr,
				})
			}
		}
	}
	return out, nil
}

// RuleFile is the Prometheus rule-file format, as much as the checks need.
type RuleFile struct {
	Groups []struct {
		Name     string `yaml:"name"`
		Interval string `yaml:"interval"`
		Rules    []Rule `yaml:"rules"`
	} `yaml:"groups"`
}

// Rule is one recording or alerting rule.
type Rule struct {
	Record      string            `yaml:"record"`
	Alert       string            `yaml:"alert"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

// ReadRules parses one rule file.
func ReadRules(path string) (RuleFile, error) {
	var rf RuleFile
	b, err := os.ReadFile(path)
	if err != nil {
		return rf, fmt.Errorf("read rules: %w", err)
	}
	if err := yaml.Unmarshal(b, &rf); err != nil {
		return rf, fmt.Errorf("parse rule file %s: %w", path, err)
	}
	return rf, nil
}

// RuleExprs lists every rule expression of the given rule files.
func RuleExprs(files ...string) ([]Expr, error) {
	var out []Expr
	for _, f := range files {
		rf, err := ReadRules(f)
		if err != nil {
			return nil, err
		}
		for _, g := range rf.Groups {
			for _, r := range g.Rules {
				e := Expr{Kind: KindRecord, Name: r.Record, Expr: r.Expr}
				if r.Alert != "" {
					e.Kind, e.Name = KindAlert, r.Alert
				}
				e.Source = fmt.Sprintf("%s: group %s %s %s", rel(f), g.Name, e.Kind, e.Name)
				out = append(out, e)
			}
		}
	}
	return out, nil
}

// RecordedNames is the set of series names the rule files record.
func RecordedNames(files ...string) (map[string]bool, error) {
	exprs, err := RuleExprs(files...)
	if err != nil {
		return nil, err
	}
	set := map[string]bool{}
	for _, e := range exprs {
		if e.Kind == KindRecord {
			set[e.Name] = true
		}
	}
	return set, nil
}

// MetricsUsed maps every metric name the expressions select to the sources
// that use it.
func MetricsUsed(exprs []Expr, vars map[string]string) (map[string][]string, error) {
	used := map[string][]string{}
	for _, e := range exprs {
		names, err := MetricNames(e.Expr, vars)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", e.Source, err)
		}
		for _, n := range names {
			used[n] = append(used[n], e.Source)
		}
	}
	for _, srcs := range used {
		sort.Strings(srcs)
	}
	return used, nil
}

// rel shortens a path to its last two elements for messages.
func rel(p string) string {
	return filepath.Join(filepath.Base(filepath.Dir(p)), filepath.Base(p))
}
