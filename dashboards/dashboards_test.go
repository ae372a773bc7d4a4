package dashboards

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/hal9-lab/hal9-lab/lab/prom"
)

// TestCommittedJSONIsGenerated regenerates into a temp dir and compares with
// the committed dashboards/*.json.
func TestCommittedJSONIsGenerated(t *testing.T) {
	dir := t.TempDir()
	if err := Write(dir); err != nil {
		t.Fatal(err)
	}
	gen, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	committed, _ := filepath.Glob("*.json")
	if len(gen) != len(committed) {
		t.Fatalf("generator writes %d dashboards, %d are committed: run make dashboards", len(gen), len(committed))
	}
	for _, g := range gen {
		want, err := os.ReadFile(g)
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Base(g))
		if err != nil {
			t.Fatalf("%v: run make dashboards", err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("dashboards/%s differs from the generator's output: run make dashboards", filepath.Base(g))
		}
	}
}

func TestWriteRejectsMissingDir(t *testing.T) {
	if err := Write(filepath.Join(t.TempDir(), "nope")); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("Write to a missing dir: err = %v", err)
	}
}

// TestPanelConventions walks every panel of every generated dashboard.
func TestPanelConventions(t *testing.T) {
	files, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	recorded, err := prom.RecordedNames(mustGlob(t, "../alerts/*.rules.yml")...)
	if err != nil {
		t.Fatal(err)
	}
	uids := map[string]bool{}
	for _, f := range files {
		p := filepath.Join(dir, f.Name)
		if err := os.WriteFile(p, f.JSON, 0o644); err != nil {
			t.Fatal(err)
		}
		d, err := prom.ReadDashboard(p)
		if err != nil {
			t.Fatal(err)
		}
		if d.UID != f.UID || uids[d.UID] {
			t.Errorf("%s: uid %q (want %q, unique)", f.Name, d.UID, f.UID)
		}
		uids[d.UID] = true
		ids := map[int]bool{}
		for _, p := range d.AllPanels() {
			where := f.Name + ": " + p.Title
			if ids[p.ID] || p.ID == 0 {
				t.Errorf("%s: panel id %d missing or repeated", where, p.ID)
			}
			ids[p.ID] = true
			if p.FieldConfig.Defaults.Unit == "" {
				t.Errorf("%s: no unit", where)
			}
			if strings.TrimSpace(p.Description) == "" {
				t.Errorf("%s: no description", where)
			}
			if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
				t.Errorf("%s: panel datasource %+v, want the ${datasource} variable", where, p.Datasource)
			}
			if len(p.Targets) == 0 {
				t.Errorf("%s: no queries", where)
			}
			for _, tg := range p.Targets {
				if tg.Datasource == nil || tg.Datasource.UID != "${datasource}" {
					t.Errorf("%s %s: target datasource %+v, want ${datasource}", where, tg.RefID, tg.Datasource)
				}
				if _, err := prom.Parse(tg.Expr, nil); err != nil {
					t.Errorf("%s %s: %v", where, tg.RefID, err)
					continue
				}
				bad, _ := prom.CountersOutsideRate(tg.Expr, nil)
				if len(bad) > 0 {
					t.Errorf("%s %s: counters %v used outside rate/increase/irate: %s", where, tg.RefID, bad, tg.Expr)
				}
				if strings.Contains(tg.Expr, "rate(") && !strings.Contains(tg.Expr, "$__rate_interval") && !strings.Contains(tg.Expr, "increase(") {
					t.Errorf("%s %s: rate() without $__rate_interval: %s", where, tg.RefID, tg.Expr)
				}
				names, _ := prom.MetricNames(tg.Expr, nil)
				for _, n := range names {
					if strings.Contains(n, ":") && !recorded[n] {
						t.Errorf("%s %s: recording rule %s is not defined in alerts/*.rules.yml", where, tg.RefID, n)
					}
				}
			}
		}
	}
	for _, u := range []string{UIDOverview, UIDNeurons, UIDLoadLab} {
		if !uids[u] {
			t.Errorf("dashboard %s not generated", u)
		}
	}
}

// TestDashboardVariablesAndLinks checks the datasource, job and instance
// variables and the links between dashboards and to the runbooks.
func TestDashboardVariablesAndLinks(t *testing.T) {
	files, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		var d struct {
			Tags       []string `json:"tags"`
			Templating struct {
				List []struct {
					Name, Type string
					Datasource *prom.DatasourceJSON
				} `json:"list"`
			} `json:"templating"`
			Links []struct {
				Type string   `json:"type"`
				Tags []string `json:"tags"`
				URL  string   `json:"url"`
			} `json:"links"`
		}
		if err := json.Unmarshal(f.JSON, &d); err != nil {
			t.Fatal(err)
		}
		vars := map[string]string{}
		for _, v := range d.Templating.List {
			vars[v.Name] = v.Type
			if v.Type == "query" && (v.Datasource == nil || v.Datasource.UID != "${datasource}") {
				t.Errorf("%s: variable %s does not query ${datasource}", f.Name, v.Name)
			}
		}
		if vars["datasource"] != "datasource" || vars["job"] != "query" || vars["instance"] != "query" {
			t.Errorf("%s: variables %v, want datasource, job and instance", f.Name, vars)
		}
		if !slices.Contains(d.Tags, "hal9") {
			t.Errorf("%s: tags %v lack hal9 (the dashboards link to each other by that tag)", f.Name, d.Tags)
		}
		var toDashboards, toRunbooks bool
		for _, l := range d.Links {
			toDashboards = toDashboards || (l.Type == "dashboards" && slices.Contains(l.Tags, "hal9"))
			toRunbooks = toRunbooks || l.URL == RunbookBaseURL
		}
		if !toDashboards || !toRunbooks {
			t.Errorf("%s: links to the hal9 dashboards %v, to the runbooks %v; want both", f.Name, toDashboards, toRunbooks)
		}
	}
}

func mustGlob(t *testing.T, pattern string) []string {
	t.Helper()
	m, err := filepath.Glob(pattern)
	if err != nil || len(m) == 0 {
		t.Fatalf("glob %s: %v (no match)", pattern, err)
	}
	return m
}

func TestProvisioningFiles(t *testing.T) {
	var ds struct {
		APIVersion  int `yaml:"apiVersion"`
		Datasources []struct {
			Name, Type, URL string
			IsDefault       bool `yaml:"isDefault"`
		} `yaml:"datasources"`
	}
	readYAML(t, "provisioning/datasources/prometheus.yml", &ds)
	if ds.APIVersion != 1 || len(ds.Datasources) != 1 || ds.Datasources[0].Type != "prometheus" || !ds.Datasources[0].IsDefault || ds.Datasources[0].URL == "" {
		t.Errorf("datasource provisioning: %+v, want one default prometheus datasource with a url", ds)
	}
	var dp struct {
		APIVersion int `yaml:"apiVersion"`
		Providers  []struct {
			Type    string
			Options struct{ Path string }
		} `yaml:"providers"`
	}
	readYAML(t, "provisioning/dashboards/hal9.yml", &dp)
	if dp.APIVersion != 1 || len(dp.Providers) != 1 || dp.Providers[0].Type != "file" || dp.Providers[0].Options.Path == "" {
		t.Errorf("dashboard provisioning: %+v, want one file provider with a path", dp)
	}
}

func readYAML(t *testing.T, path string, into any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, into); err != nil {
		t.Fatalf("parse %s: %v", path, err)
	}
}
