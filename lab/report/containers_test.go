package report

import (
	"strings"
	"testing"
)

// TestContainersInEveryFormat: a leg whose servers ran in containers shows
// its image, network and starts in report.md, report.html and junit.xml;
// one that recorded no container fails its JUnit case.
func TestContainersInEveryFormat(t *testing.T) {
	zero := 0
	s := &RunSummary{Command: "run", Legs: []Leg{
		{Name: "sqlite", Run: 1, Server: Server{ExitCode: &zero}, Containers: &Containers{Image: "hal9-lab/hal9:lab-0123456789ab", ImageSource: "built",
			Network: "hal9-lab-feedbeef", Gateway: "10.9.0.1", Starts: []ContainerStart{{Name: "hal9-sqlite-run1-1", ReadyMS: 412.4}, {Name: "hal9-sqlite-run1-2", ReadyMS: 388}}}},
		{Name: "postgres", Run: 1, Containers: &Containers{Image: "hal9-lab/hal9:lab-0123456789ab", ImageSource: "present", Network: "hal9-lab-cafe"}},
		{Name: "postgres+redis", Run: 1},
	}}
	md := Markdown(s)
	for _, want := range []string{"## Servers in containers", "| sqlite | 1 | `hal9-lab/hal9:lab-0123456789ab` (built) | hal9-lab-feedbeef | 2 | 412, 388 ms |"} {
		if !strings.Contains(md, want) {
			t.Errorf("report.md lacks %q:\n%s", want, md)
		}
	}
	if strings.Contains(md, "| postgres+redis | 1 | `") {
		t.Error("report.md lists a leg that ran processes as containers")
	}
	html, err := HTML(s)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(html), `<section id="containers">`) || !strings.Contains(string(html), "412, 388 ms") {
		t.Error("report.html lacks the containers section")
	}
	ju, err := JUnit(s)
	if err != nil {
		t.Fatal(err)
	}
	j := string(ju)
	if !strings.Contains(j, `name="containers.sqlite.run1" tests="1" failures="0"`) || !strings.Contains(j, `name="containers.postgres.run1" tests="1" failures="1"`) {
		t.Errorf("junit.xml: want a passing case for sqlite and a failing one for postgres (no container):\n%s", j)
	}
	if strings.Contains(j, "containers.postgres+redis") {
		t.Error("junit.xml has a containers case for a leg of processes")
	}
	if empty, _ := HTML(&RunSummary{Legs: []Leg{{Name: "sqlite"}}}); strings.Contains(string(empty), `id="containers"`) {
		t.Error("report.html shows the containers section without containers")
	}
}
