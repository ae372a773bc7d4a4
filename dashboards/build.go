package dashboards

import (
	"fmt"
	"maps"
	"slices"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/variants"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
	"github.com/grafana/grafana-foundation-sdk/go/stat"
	"github.com/grafana/grafana-foundation-sdk/go/statetimeline"
	"github.com/grafana/grafana-foundation-sdk/go/timeseries"
)

// The small vocabulary every dashboard is written in: a query, a panel spec,
// and a builder that numbers panels so their ids stay stable across runs.

// datasourceVar is the name of the datasource template variable; every panel
// and query points at it so a user's Grafana picks its own Prometheus.
const datasourceVar = "datasource"

func dsRef() common.DataSourceRef {
	return common.DataSourceRef{Type: cog.ToPtr("prometheus"), Uid: cog.ToPtr("${" + datasourceVar + "}")}
}

// q is one PromQL target with its legend.
type q struct {
	expr   string
	legend string
}

// kind is the visualisation of a panel.
type kind int

const (
	kindTimeseries kind = iota
	kindStat
	kindState
)

// panel is the spec of one panel; every field the conventions require
// (unit, description) is a plain field so a missing one is easy to spot.
type panel struct {
	kind        kind
	title       string
	description string
	unit        string
	width       uint32
	height      uint32
	queries     []q
	min, max    *float64
	thresholds  []dashboard.Threshold
	mappings    []dashboard.ValueMapping
	links       []link
	stacked     bool
}

// link is a panel link (to a runbook or another dashboard).
type link struct {
	title string
	url   string
}

// board accumulates panels and rows, assigning stable ids in order.
type board struct {
	b      *dashboard.DashboardBuilder
	nextID uint32
}

func newBoard(uid, title, description string, tags []string, vars []cog.Builder[dashboard.VariableModel]) *board {
	b := dashboard.NewDashboardBuilder(title).
		Uid(uid).
		Description(description).
		Tags(tags).
		Editable().
		Refresh("30s").
		Time("now-1h", "now").
		Timezone(common.TimeZoneBrowser).
		Tooltip(dashboard.DashboardCursorSyncCrosshair).
		Variables(vars).
		Link(dashboard.NewDashboardLinkBuilder("HAL9 dashboards").
			Type(dashboard.DashboardLinkTypeDashboards).
			Tags([]string{"hal9"}).
			AsDropdown(true).
			IncludeVars(true).
			KeepTime(true)).
		Link(dashboard.NewDashboardLinkBuilder("Runbooks").
			Type(dashboard.DashboardLinkTypeLink).
			Icon("doc").
			Url(RunbookBaseURL).
			TargetBlank(true))
	return &board{b: b}
}

func (bd *board) row(title string) {
	bd.nextID++
	bd.b.WithRow(dashboard.NewRowBuilder(title).Id(bd.nextID))
}

func (bd *board) add(p panel) {
	bd.nextID++
	bd.b.WithPanel(p.build(bd.nextID))
}

func (bd *board) build() (dashboard.Dashboard, error) {
	d, err := bd.b.Build()
	if err != nil {
		return dashboard.Dashboard{}, fmt.Errorf("build dashboard: %w", err)
	}
	// The SDK defaults links into the controls menu; show them above the
	// panels, where operators look for them.
	for i := range d.Links {
		d.Links[i].Placement = nil
	}
	for _, p := range d.Panels {
		if p.Panel != nil {
			for i := range p.Panel.Links {
				p.Panel.Links[i].Placement = nil
			}
		}
	}
	return d, nil
}

func targets(qs []q) []cog.Builder[variants.Dataquery] {
	out := make([]cog.Builder[variants.Dataquery], 0, len(qs))
	for i, x := range qs {
		out = append(out, prometheus.NewDataqueryBuilder().
			Datasource(dsRef()).
			RefId(string(rune('A'+i))).
			Expr(x.expr).
			LegendFormat(x.legend).
			Range())
	}
	return out
}

func (p panel) linkBuilders() []cog.Builder[dashboard.DashboardLink] {
	out := make([]cog.Builder[dashboard.DashboardLink], 0, len(p.links))
	for _, l := range p.links {
		out = append(out, dashboard.NewDashboardLinkBuilder(l.title).Url(l.url).TargetBlank(true))
	}
	return out
}

func (p panel) thresholdsBuilder() *dashboard.ThresholdsConfigBuilder {
	steps := p.thresholds
	if len(steps) == 0 {
		steps = []dashboard.Threshold{{Value: nil, Color: "green"}}
	}
	return dashboard.NewThresholdsConfigBuilder().Mode(dashboard.ThresholdsModeAbsolute).Steps(steps)
}

func (p panel) build(id uint32) cog.Builder[dashboard.Panel] {
	w, h := p.width, p.height
	if w == 0 {
		w = 12
	}
	if h == 0 {
		h = 8
	}
	switch p.kind {
	case kindStat:
		b := stat.NewPanelBuilder().Id(id).Title(p.title).Description(p.description).
			Datasource(dsRef()).Unit(p.unit).Span(w).Height(h).
			Targets(targets(p.queries)).Links(p.linkBuilders()).
			Thresholds(p.thresholdsBuilder()).
			GraphMode(common.BigValueGraphModeArea).
			ColorMode(common.BigValueColorModeValue).
			ReduceOptions(common.NewReduceDataOptionsBuilder().Calcs([]string{"lastNotNull"}))
		if len(p.mappings) > 0 {
			b.Mappings(p.mappings)
		}
		if p.min != nil {
			b.Min(*p.min)
		}
		if p.max != nil {
			b.Max(*p.max)
		}
		return b
	case kindState:
		return statetimeline.NewPanelBuilder().Id(id).Title(p.title).Description(p.description).
			Datasource(dsRef()).Unit(p.unit).Span(w).Height(h).
			Targets(targets(p.queries)).Links(p.linkBuilders()).
			Thresholds(p.thresholdsBuilder()).
			Mappings(p.mappings).
			ShowValue(common.VisibilityModeAuto)
	default:
		b := timeseries.NewPanelBuilder().Id(id).Title(p.title).Description(p.description).
			Datasource(dsRef()).Unit(p.unit).Span(w).Height(h).
			Targets(targets(p.queries)).Links(p.linkBuilders()).
			Thresholds(p.thresholdsBuilder()).
			LineWidth(1).FillOpacity(10).
			ShowPoints(common.VisibilityModeNever).
			Legend(common.NewVizLegendOptionsBuilder().
				ShowLegend(true).
				DisplayMode(common.LegendDisplayModeTable).
				Placement(common.LegendPlacementBottom).
				Calcs([]string{"mean", "max", "lastNotNull"})).
			Tooltip(common.NewVizTooltipOptionsBuilder().Mode(common.TooltipDisplayModeMulti).Sort(common.SortOrderDescending))
		if len(p.thresholds) > 0 {
			b.ThresholdsStyle(common.NewGraphThresholdsStyleConfigBuilder().Mode(common.GraphThresholdsStyleModeDashed))
		}
		if p.stacked {
			b.Stacking(common.NewStackingConfigBuilder().Mode(common.StackingModeNormal))
		}
		if len(p.mappings) > 0 {
			b.Mappings(p.mappings)
		}
		if p.min != nil {
			b.Min(*p.min)
		}
		if p.max != nil {
			b.Max(*p.max)
		}
		return b
	}
}

// step is a threshold step; a nil value is the base step.
func step(color string, v *float64) dashboard.Threshold {
	return dashboard.Threshold{Value: v, Color: color}
}

func f(v float64) *float64 { return &v }

// steps builds base-green thresholds turning yellow and red at the given values.
func steps(warn, crit float64) []dashboard.Threshold {
	return []dashboard.Threshold{step("green", nil), step("yellow", f(warn)), step("red", f(crit))}
}

// lowSteps is the reverse: red below crit, yellow below warn (ratios where low is bad).
func lowSteps(crit, warn float64) []dashboard.Threshold {
	return []dashboard.Threshold{step("red", nil), step("yellow", f(crit)), step("green", f(warn))}
}

func valueMap(m map[string][2]string) dashboard.ValueMapping {
	opts := make(map[string]dashboard.ValueMappingResult, len(m))
	i := int32(0)
	for _, k := range slices.Sorted(maps.Keys(m)) {
		v := m[k]
		opts[k] = dashboard.ValueMappingResult{Text: cog.ToPtr(v[0]), Color: cog.ToPtr(v[1]), Index: cog.ToPtr(i)}
		i++
	}
	return dashboard.ValueMapping{ValueMap: &dashboard.ValueMap{Type: dashboard.MappingTypeValueToText, Options: opts}}
}
