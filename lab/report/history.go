package report

import (
	"fmt"
	"strings"
	"time"
)

// History is what the history's check said right after a gate's runs were
// added (`hal9-lab history check --gate-report DIR`): the change points
// among each series' last Window nights, so that a step smaller than the
// gate's minimum effect, which stays night after night, shows in the
// gate's own report.
type History struct {
	URL    string `json:"url"`    // the history checked (a password is never shown)
	Window int    `json:"window"` // nights
	Judged int    `json:"judged"` // series checked
	// Points are the change points within the window, regressions first.
	Points []HistoryPoint `json:"points,omitempty"`
	// Earlier counts the change points before the window (trend.html
	// shows them).
	Earlier int    `json:"earlier"`
	Trend   string `json:"trend,omitempty"` // trend.html, relative to the report
}

// HistoryPoint is one change point of one series.
type HistoryPoint struct {
	Series         string    `json:"series"` // profile leg/scenario[/op]/metric [kind: group]
	Direction      string    `json:"direction"`
	Index          int       `json:"index"`
	Time           time.Time `json:"time"`
	PreviousCommit string    `json:"previous_commit"`
	Commit         string    `json:"commit"`
	Before         float64   `json:"before"`
	After          float64   `json:"after"`
	Unit           string    `json:"unit,omitempty"`
	Change         float64   `json:"change"`
	P              float64   `json:"p"`
}

// Regressions counts the window's change points for the worse.
func (h *History) Regressions() int {
	n := 0
	for _, p := range h.Points {
		if p.Direction == "regression" {
			n++
		}
	}
	return n
}

// headline is the section's first sentence, in both reports.
func (h *History) headline() string {
	s := fmt.Sprintf("%d series of %s checked for change points (E-divisive); within each one's last %d nights: %d for the worse, %d for the better; %d earlier.",
		h.Judged, h.URL, h.Window, h.Regressions(), len(h.Points)-h.Regressions(), h.Earlier)
	if h.Regressions() > 0 {
		s += " A step for the worse that stays is a regression even when each night passed the gate: `make gate` exits 99."
	}
	return s
}

func (p HistoryPoint) commits() string {
	return short(p.PreviousCommit) + ".." + short(p.Commit)
}

func (p HistoryPoint) values() string {
	return fmt.Sprintf("%.4g → %.4g %s", p.Before, p.After, p.Unit)
}

func writeHistory(b *strings.Builder, h *History) {
	if h == nil {
		return
	}
	fmt.Fprintf(b, "## History\n\n%s\n\n", h.headline())
	if h.Trend != "" {
		fmt.Fprintf(b, "Every series night after night: [%s](%s).\n\n", h.Trend, h.Trend)
	}
	if len(h.Points) == 0 {
		return
	}
	b.WriteString("| direction | series | change | values | night | commits | p |\n| --- | --- | ---: | --- | --- | --- | ---: |\n")
	for _, p := range h.Points {
		fmt.Fprintf(b, "| %s | %s | %+.1f%% | %s | #%d %s | `%s` | %.4f |\n", p.Direction, p.Series, 100*p.Change, p.values(), p.Index, p.Time.Format("2006-01-02"), p.commits(), p.P)
	}
	b.WriteString("\n")
}
