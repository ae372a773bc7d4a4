package report

import (
	"fmt"
	"html/template"
	"strings"
)

// Departure is one way the lab's run differs from production, in plain
// words, and the legs it applies to.
type Departure struct {
	Text string   `json:"text"`
	Legs []string `json:"legs"`
}

func (d Departure) legs(all int) string {
	if len(d.Legs) == 0 || len(d.Legs) >= all {
		return ""
	}
	return " (" + strings.Join(d.Legs, ", ") + ")"
}

// legNames counts the distinct leg names of the run.
func legNames(s *RunSummary) int {
	seen := map[string]bool{}
	for _, l := range s.Legs {
		seen[l.Name] = true
	}
	return len(seen)
}

// writeDepartures puts the departures from production at the top of report.md.
func writeDepartures(b *strings.Builder, s *RunSummary) {
	if len(s.Departures) == 0 {
		return
	}
	b.WriteString("**Not production:** this run departs from production's settings in these ways, so read its numbers with them:\n\n")
	n := legNames(s)
	for _, d := range s.Departures {
		fmt.Fprintf(b, "- %s%s\n", d.Text, d.legs(n))
	}
	b.WriteString("\n")
}

// departuresHTML is the same list for report.html.
func departuresHTML(s *RunSummary) template.HTML {
	if len(s.Departures) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString(`<div class="warnbox" id="departures"><b>Not production:</b> this run departs from production's settings in these ways, so read its numbers with them:<ul>`)
	n := legNames(s)
	for _, d := range s.Departures {
		b.WriteString("<li>" + template.HTMLEscapeString(d.Text+d.legs(n)) + "</li>")
	}
	b.WriteString("</ul></div>")
	return template.HTML(b.String())
}

// departuresJUnit lists them as passing cases whose output is the text,
// so a CI view of junit.xml shows them too.
func departuresJUnit(root *junitSuites, s *RunSummary) {
	if len(s.Departures) == 0 {
		return
	}
	suite := junitSuite{Name: "departures from production"}
	n := legNames(s)
	for i, d := range s.Departures {
		suite.add(junitCase{Name: fmt.Sprintf("departure %d", i+1), Classname: "hal9lab.settings", Output: d.Text + d.legs(n)})
	}
	root.Suites = append(root.Suites, suite)
}
