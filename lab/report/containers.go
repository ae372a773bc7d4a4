package report

import (
	"bytes"
	"fmt"
	"html/template"
	"strings"
)

// Containers says a leg's servers ran in containers (hal9-lab run --server
// container; nil when they ran as processes): which image, on which
// network, and each start's time from `create` to /readyz answering 200.
type Containers struct {
	Image       string           `json:"image"`        // hal9-lab/hal9:lab-<hash>
	ImageSource string           `json:"image_source"` // built (in this run) or present
	Network     string           `json:"network"`      // the user-defined network, with PostgreSQL and Redis
	Gateway     string           `json:"gateway"`      // this machine on it: the profile receiver
	Starts      []ContainerStart `json:"starts"`
}

// ContainerStart is one container of a leg's server.
type ContainerStart struct {
	Name    string  `json:"name"`
	ReadyMS float64 `json:"ready_ms"` // create to /readyz 200
}

// readyText is "312, 298 ms" for the starts' times.
func (c *Containers) readyText() string {
	var parts []string
	for _, s := range c.Starts {
		parts = append(parts, fmt.Sprintf("%.0f", s.ReadyMS))
	}
	if len(parts) == 0 {
		return "–"
	}
	return strings.Join(parts, ", ") + " ms"
}

// writeContainers is report.md's section on server containers.
func writeContainers(b *strings.Builder, s *RunSummary) {
	var rows []string
	for _, l := range s.Legs {
		if c := l.Containers; c != nil {
			rows = append(rows, fmt.Sprintf("| %s | %d | `%s` (%s) | %s | %d | %s |", legName(l), l.Run, c.Image, c.ImageSource, c.Network, len(c.Starts), c.readyText()))
		}
	}
	if len(rows) == 0 {
		return
	}
	b.WriteString("## Servers in containers\n\nEach leg's servers ran as containers of the server's image on the network of its PostgreSQL and Redis containers; start to ready is `create` to `/readyz` answering 200.\n\n")
	b.WriteString("| leg | run | image | network | containers | start to ready |\n| --- | ---: | --- | --- | ---: | --- |\n")
	b.WriteString(strings.Join(rows, "\n") + "\n\n")
}

var containersTmpl = template.Must(template.New("containers").Funcs(template.FuncMap{"legName": legName}).Parse(`<section id="containers">
  <h2>Servers in containers</h2>
  <p class="note">Each leg's servers ran as containers of the server's image on the network of its PostgreSQL and Redis containers; start to ready is <code>create</code> to <code>/readyz</code> answering 200.</p>
  <table>
    <tr><th>leg</th><th class="n">run</th><th>image</th><th>network</th><th class="n">containers</th><th>start to ready</th></tr>
    {{range $l := .}}{{with $l.Containers}}
    <tr><td><b>{{legName $l}}</b></td><td class="n">{{$l.Run}}</td><td><code>{{.Image}}</code> ({{.ImageSource}})</td><td>{{.Network}}</td><td class="n">{{len .Starts}}</td><td>{{.ReadyText}}</td></tr>
    {{end}}{{end}}
  </table>
</section>
`))

// ReadyText is readyText for the template.
func (c *Containers) ReadyText() string { return c.readyText() }

// containersHTML is report.html's section on server containers ("" when
// every server ran as a process).
func containersHTML(s *RunSummary) (template.HTML, error) {
	var legs []Leg
	for _, l := range s.Legs {
		if l.Containers != nil {
			legs = append(legs, l)
		}
	}
	if len(legs) == 0 {
		return "", nil
	}
	var buf bytes.Buffer
	if err := containersTmpl.Execute(&buf, legs); err != nil {
		return "", fmt.Errorf("render the containers section: %w", err)
	}
	return template.HTML(buf.String()), nil
}

// containerSuite is junit.xml's suite for a leg whose servers ran in
// containers: its case fails when no container started.
func containerSuite(l Leg) *junitSuite {
	c := l.Containers
	if c == nil {
		return nil
	}
	jc := junitCase{Name: "servers ran in containers", Classname: "hal9lab." + l.Name,
		Output: fmt.Sprintf("image %s (%s), network %s, %d containers, start to ready %s", c.Image, c.ImageSource, c.Network, len(c.Starts), c.readyText())}
	if len(c.Starts) == 0 && l.Error == "" {
		jc.Failure = &junitMessage{Message: "no container started", Body: "the leg ran in container mode but recorded no server container"}
	}
	suite := &junitSuite{Name: fmt.Sprintf("containers.%s.run%d", legName(l), l.Run)}
	suite.add(jc)
	return suite
}
