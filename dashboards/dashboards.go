// Package dashboards generates HAL9's Grafana dashboards from Go with the
// Grafana Foundation SDK. The JSON it writes is committed next to it
// (dashboards/*.json) and loaded by dashboards/provisioning; a test fails
// when the two drift apart.
package dashboards

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
)

// Stable dashboard uids: alerts link to /d/<uid>, dashboards link to each other.
const (
	UIDOverview = "hal9-overview"
	UIDNeurons  = "hal9-neurons"
	UIDLoadLab  = "hal9-load-lab"
)

// RunbookBaseURL is where alerts/runbooks/*.md are browsable.
const RunbookBaseURL = "https://github.com/hal9-lab/hal9-lab/tree/main/alerts/runbooks"

// RunbookURL returns the runbook of one alert.
func RunbookURL(alert string) string {
	return "https://github.com/hal9-lab/hal9-lab/blob/main/alerts/runbooks/" + alert + ".md"
}

// DashboardPath is the Grafana URL path of a dashboard, as alerts put it in
// their "dashboard" annotation.
func DashboardPath(uid string) string { return "/d/" + uid }

// File is one generated dashboard.
type File struct {
	Name string // file name, e.g. "hal9-overview.json"
	UID  string
	JSON []byte
}

// Generate builds every dashboard and renders it as indented JSON.
func Generate() ([]File, error) {
	builders := []struct {
		uid   string
		build func() (dashboard.Dashboard, error)
	}{
		{UIDOverview, overview},
		{UIDNeurons, neurons},
		{UIDLoadLab, loadLab},
	}
	files := make([]File, 0, len(builders))
	for _, b := range builders {
		d, err := b.build()
		if err != nil {
			return nil, fmt.Errorf("dashboard %s: %w", b.uid, err)
		}
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false) // keep PromQL's < > & readable in the committed JSON
		if err := enc.Encode(d); err != nil {
			return nil, fmt.Errorf("dashboard %s: encode JSON: %w", b.uid, err)
		}
		files = append(files, File{Name: b.uid + ".json", UID: b.uid, JSON: buf.Bytes()})
	}
	return files, nil
}

// Write generates every dashboard into dir (which must exist).
func Write(dir string) error {
	files, err := Generate()
	if err != nil {
		return err
	}
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return fmt.Errorf("output directory %q: not a directory (create it or pass -out DIR): %v", dir, err)
	}
	for _, f := range files {
		p := filepath.Join(dir, f.Name)
		if err := os.WriteFile(p, f.JSON, 0o644); err != nil {
			return fmt.Errorf("write dashboard %s: %w", p, err)
		}
	}
	return nil
}

// Template variables shared by the dashboards. $job and $instance select the
// HAL9 server's scrape target; the Load lab adds $lab_job for the lab's own
// /metrics endpoint.
func serverVars() []cog.Builder[dashboard.VariableModel] {
	return []cog.Builder[dashboard.VariableModel]{
		dashboard.NewDatasourceVariableBuilder(datasourceVar).
			Label("Data source").
			Description("The Prometheus that scrapes the HAL9 admin listener (/metrics on --admin-addr).").
			Type("prometheus"),
		queryVar("job", "Job", "label_values(hal9_build_info, job)", false),
		queryVar("instance", "Instance", `label_values(hal9_build_info{job=~"$job"}, instance)`, true),
	}
}

func queryVar(name, label, query string, multi bool) *dashboard.QueryVariableBuilder {
	return dashboard.NewQueryVariableBuilder(name).
		Label(label).
		Datasource(dsRef()).
		Query(dashboard.StringOrMap{String: cog.ToPtr(query)}).
		Definition(query).
		Refresh(dashboard.VariableRefreshOnTimeRangeChanged).
		Sort(dashboard.VariableSortAlphabeticalAsc).
		Multi(multi).
		IncludeAll(true).
		AllValue(".+").
		Current(dashboard.VariableOption{
			Selected: cog.ToPtr(true),
			Text:     dashboard.StringOrArrayOfString{String: cog.ToPtr("All")},
			Value:    dashboard.StringOrArrayOfString{String: cog.ToPtr("$__all")},
		})
}

// sel is the label matcher every server query starts with.
const sel = `job=~"$job", instance=~"$instance"`

// with appends more matchers to sel.
func with(extra string) string { return sel + ", " + extra }
