package alerts

import (
	"bytes"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/hal9-lab/hal9-lab/dashboards"
	"github.com/hal9-lab/hal9-lab/lab/prom"
)

// ruleFiles are the rule files the Makefile checks (alerts/*.rules.yml).
func ruleFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("*.rules.yml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no *.rules.yml in alerts/ (err %v)", err)
	}
	return files
}

type alertRule struct {
	prom.Rule
	file string
}

func alertRules(t *testing.T) []alertRule {
	t.Helper()
	var out []alertRule
	for _, f := range ruleFiles(t) {
		rf, err := prom.ReadRules(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range rf.Groups {
			for _, r := range g.Rules {
				if r.Alert != "" {
					out = append(out, alertRule{r, f})
				}
			}
		}
	}
	if len(out) == 0 {
		t.Fatal("no alerting rules found")
	}
	return out
}

var knownDashboards = map[string]bool{dashboards.UIDOverview: true, dashboards.UIDNeurons: true, dashboards.UIDLoadLab: true}

func TestAlertsHaveLabelsAnnotationsAndRunbooks(t *testing.T) {
	seen := map[string]bool{}
	for _, a := range alertRules(t) {
		t.Run(a.Alert, func(t *testing.T) {
			if seen[a.Alert] {
				t.Errorf("alert %s defined twice", a.Alert)
			}
			seen[a.Alert] = true
			if sev := a.Labels["severity"]; sev != "critical" && sev != "warning" {
				t.Errorf("label severity = %q, want critical (pages) or warning (tickets)", sev)
			}
			for _, k := range []string{"summary", "description", "runbook_url", "dashboard"} {
				if strings.TrimSpace(a.Annotations[k]) == "" {
					t.Errorf("annotation %q missing", k)
				}
			}
			if got, want := a.Annotations["runbook_url"], dashboards.RunbookURL(a.Alert); got != want {
				t.Errorf("runbook_url = %q, want %q", got, want)
			}
			rb := filepath.Join("runbooks", a.Alert+".md")
			body, err := os.ReadFile(rb)
			if err != nil {
				t.Fatalf("runbook: %v (write %s)", err, rb)
			}
			for _, h := range []string{"# " + a.Alert, "## What it means", "## Confirm it on the dashboards", "## What to do"} {
				if !bytes.Contains(body, []byte(h)) {
					t.Errorf("%s lacks the heading %q", rb, h)
				}
			}
			d := a.Annotations["dashboard"]
			uid := strings.TrimPrefix(strings.SplitN(d, "?", 2)[0], "/d/")
			if !strings.HasPrefix(d, "/d/") || !knownDashboards[uid] {
				t.Errorf("dashboard = %q, want /d/<uid> of a generated dashboard", d)
			} else if _, err := os.Stat(filepath.Join("..", "dashboards", uid+".json")); err != nil {
				t.Errorf("dashboard %s: %v", uid, err)
			}
			if !bytes.Contains(body, []byte(uid)) {
				t.Errorf("%s does not name the dashboard %s it should be confirmed on", rb, uid)
			}
		})
	}
	// No orphan runbooks.
	books, _ := filepath.Glob("runbooks/*.md")
	for _, b := range books {
		name := strings.TrimSuffix(filepath.Base(b), ".md")
		if !seen[name] && name != "README" {
			t.Errorf("runbook %s has no alert of that name", b)
		}
	}
}

// promtoolTests is the promtool unit-test file format, as much as we need.
type promtoolTests struct {
	RuleFiles []string `yaml:"rule_files"`
	Tests     []struct {
		Name          string `yaml:"name"`
		AlertRuleTest []struct {
			Alertname string           `yaml:"alertname"`
			ExpAlerts []map[string]any `yaml:"exp_alerts"`
		} `yaml:"alert_rule_test"`
	} `yaml:"tests"`
}

func TestEveryAlertHasFiringAndSilentTests(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("tests", "*.yml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no tests/*.yml (err %v)", err)
	}
	fires, silent := map[string][]string{}, map[string][]string{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var pt promtoolTests
		if err := yaml.Unmarshal(b, &pt); err != nil {
			t.Fatalf("parse %s: %v", f, err)
		}
		for _, rf := range pt.RuleFiles {
			if _, err := os.Stat(filepath.Join(filepath.Dir(f), rf)); err != nil {
				t.Errorf("%s: rule_files entry %q does not resolve from the test file's directory: %v", f, rf, err)
			}
		}
		for _, tc := range pt.Tests {
			for _, at := range tc.AlertRuleTest {
				where := f + ": " + tc.Name
				if len(at.ExpAlerts) > 0 {
					fires[at.Alertname] = append(fires[at.Alertname], where)
				} else {
					silent[at.Alertname] = append(silent[at.Alertname], where)
				}
			}
		}
	}
	defined := map[string]bool{}
	for _, a := range alertRules(t) {
		defined[a.Alert] = true
		if len(fires[a.Alert]) == 0 {
			t.Errorf("alert %s has no promtool test where it fires (exp_alerts non-empty)", a.Alert)
		}
		if len(silent[a.Alert]) == 0 {
			t.Errorf("alert %s has no promtool test where it stays silent (exp_alerts: [])", a.Alert)
		}
	}
	for name := range fires {
		if !defined[name] {
			t.Errorf("tests expect alert %s, which no rule defines", name)
		}
	}
}

func TestRuleExpressionsLint(t *testing.T) {
	exprs, err := prom.RuleExprs(ruleFiles(t)...)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range exprs {
		if _, err := prom.Parse(e.Expr, nil); err != nil {
			t.Errorf("%s: %v", e.Source, err)
			continue
		}
		bad, err := prom.CountersOutsideRate(e.Expr, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(bad) > 0 {
			t.Errorf("%s: counters %v used outside rate/increase/irate", e.Source, bad)
		}
		if strings.Contains(e.Expr, "$") {
			t.Errorf("%s: Grafana variable in a rule: %s", e.Source, e.Expr)
		}
	}
}

// The SLO numbers live in two places (dashboards and rules); keep them equal.
func TestSLOConstantsMatchRules(t *testing.T) {
	budget := func(obj float64) string {
		return strconv.FormatFloat(math.Round((1-obj)*1e6)/1e6, 'g', -1, 64)
	}
	want := map[string][]string{
		"HAL9ErrorBudgetBurn":       {"(14.4 * " + budget(dashboards.AvailabilityObjective) + ")", "(6 * " + budget(dashboards.AvailabilityObjective) + ")"},
		"HAL9ErrorBudgetBurnSlow":   {"> " + budget(dashboards.AvailabilityObjective)},
		"HAL9LatencyBudgetBurn":     {"(14.4 * " + budget(dashboards.LatencyObjective) + ")", "(6 * " + budget(dashboards.LatencyObjective) + ")"},
		"HAL9LatencyBudgetBurnSlow": {"> " + budget(dashboards.LatencyObjective)},
	}
	for _, a := range alertRules(t) {
		for _, s := range want[a.Alert] {
			if !strings.Contains(a.Expr, s) {
				t.Errorf("%s: expression lacks %q:\n%s", a.Alert, s, a.Expr)
			}
		}
	}
	b, err := os.ReadFile(ruleFiles(t)[0])
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte(`le="`+dashboards.LatencyThreshold+`"`)) {
		t.Errorf("rules do not use the bucket le=%q", dashboards.LatencyThreshold)
	}
}

// TestPromtool runs what `make alerts` runs, from the repository root.
func TestPromtool(t *testing.T) {
	if _, err := exec.LookPath("promtool"); err != nil {
		if os.Getenv("HAL9_REQUIRE_INFRA") == "1" {
			t.Fatalf("promtool not on PATH and HAL9_REQUIRE_INFRA=1: %v", err)
		}
		t.Skipf("promtool not on PATH (apt-get install prometheus): %v", err)
	}
	rules, _ := filepath.Glob(filepath.Join("..", "alerts", "*.rules.yml"))
	tests, _ := filepath.Glob(filepath.Join("..", "alerts", "tests", "*.yml"))
	sort.Strings(tests)
	for _, args := range [][]string{
		append([]string{"check", "rules"}, rel(rules)...),
		append([]string{"test", "rules"}, rel(tests)...),
	} {
		cmd := exec.Command("promtool", args...)
		cmd.Dir = ".."
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

func rel(paths []string) []string {
	out := make([]string, len(paths))
	for i, p := range paths {
		out[i] = strings.TrimPrefix(filepath.ToSlash(p), "../")
	}
	return out
}

// TestExamplePrometheusConfig: the example scrapes the admin listener (not
// the API port) under the job name the rules expect, and loads these rules.
func TestExamplePrometheusConfig(t *testing.T) {
	path := filepath.Join("..", "examples", "prometheus.yml")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		RuleFiles []string `yaml:"rule_files"`
		Scrape    []struct {
			Job         string `yaml:"job_name"`
			MetricsPath string `yaml:"metrics_path"`
			Static      []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	if err := yaml.Unmarshal(b, &cfg); err != nil {
		t.Fatalf("parse %s: %v", path, err)
	}
	var loaded int
	for _, rf := range cfg.RuleFiles {
		m, _ := filepath.Glob(filepath.Join(filepath.Dir(path), rf))
		loaded += len(m)
	}
	if loaded != len(ruleFiles(t)) {
		t.Errorf("rule_files %v load %d files, want the %d alerts/*.rules.yml", cfg.RuleFiles, loaded, len(ruleFiles(t)))
	}
	var hal9 bool
	for _, s := range cfg.Scrape {
		if s.Job != "hal9" {
			continue
		}
		hal9 = true
		for _, sc := range s.Static {
			for _, tg := range sc.Targets {
				if !strings.HasSuffix(tg, ":9091") {
					t.Errorf("job hal9 scrapes %s; want the admin listener (default port 9091), not the API port", tg)
				}
			}
		}
	}
	if !hal9 {
		t.Error("no scrape job named hal9 (the rules select job=\"hal9\")")
	}
	if _, err := exec.LookPath("promtool"); err == nil {
		if out, err := exec.Command("promtool", "check", "config", path).CombinedOutput(); err != nil {
			t.Errorf("promtool check config %s: %v\n%s", path, err, out)
		}
	}
}
