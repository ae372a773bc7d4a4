package report

import (
	"encoding/xml"
	"fmt"

	"github.com/hal9-lab/hal9-lab/lab/baseline"
)

type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Skipped  int          `xml:"skipped,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name     string      `xml:"name,attr"`
	Tests    int         `xml:"tests,attr"`
	Failures int         `xml:"failures,attr"`
	Skipped  int         `xml:"skipped,attr"`
	Cases    []junitCase `xml:"testcase"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Failure   *junitMessage `xml:"failure,omitempty"`
	Skipped   *junitMessage `xml:"skipped,omitempty"`
	Output    string        `xml:"system-out,omitempty"`
}

type junitMessage struct {
	Message string `xml:"message,attr"`
	Body    string `xml:",chardata"`
}

func (s *junitSuite) add(c junitCase) {
	s.Cases = append(s.Cases, c)
	s.Tests++
	if c.Failure != nil {
		s.Failures++
	}
	if c.Skipped != nil {
		s.Skipped++
	}
}

// JUnit renders junit.xml: one test case per threshold (per leg, run and
// scenario), per gate verdict, per skipped leg and per lab error.
func JUnit(s *RunSummary) ([]byte, error) {
	root := junitSuites{Name: "hal9-lab " + s.Profile}
	for _, l := range s.Legs {
		for _, sc := range l.Scenarios {
			suite := junitSuite{Name: fmt.Sprintf("thresholds.%s.run%d.%s", legName(l), l.Run, sc.Name)}
			class := "hal9lab." + l.Name + "." + sc.Name
			for _, t := range sc.Thresholds {
				c := junitCase{Name: t.Metric + ": " + t.Expr, Classname: class}
				if !t.OK {
					c.Failure = &junitMessage{Message: "threshold crossed", Body: fmt.Sprintf("%s on %s failed on leg %s (run %d)", t.Expr, t.Metric, l.Name, l.Run)}
				}
				suite.add(c)
			}
			if sc.Error != "" {
				suite.add(junitCase{Name: "scenario ran", Classname: class, Failure: &junitMessage{Message: "scenario error", Body: sc.Error}})
			}
			if len(suite.Cases) > 0 {
				root.Suites = append(root.Suites, suite)
			}
		}
		if cases := replicaCases(l); len(cases) > 0 {
			suite := junitSuite{Name: fmt.Sprintf("replicas.%s.run%d", legName(l), l.Run)}
			for _, c := range cases {
				suite.add(c)
			}
			root.Suites = append(root.Suites, suite)
		}
		if suite := containerSuite(l); suite != nil {
			root.Suites = append(root.Suites, *suite)
		}
		if l.Server.ExitCode != nil {
			c := junitCase{Name: "server exits 0 on SIGTERM", Classname: "hal9lab." + l.Name}
			if *l.Server.ExitCode != 0 {
				c.Failure = &junitMessage{Message: "bad exit", Body: fmt.Sprintf("server exited %d", *l.Server.ExitCode)}
			}
			suite := junitSuite{Name: fmt.Sprintf("server.%s.run%d", legName(l), l.Run)}
			suite.add(c)
			root.Suites = append(root.Suites, suite)
		}
	}
	faultsJUnit(&root, s)
	if s.Gate != nil {
		suite := junitSuite{Name: "gate"}
		for _, r := range s.Gate.Comparison.Results {
			c := junitCase{Name: r.Key.String(), Classname: "hal9lab.gate." + r.Leg,
				Output: fmt.Sprintf("%s: baseline %v, now %v", r.Reason, r.Baseline, r.Candidate)}
			switch r.Verdict {
			case baseline.Regressed:
				c.Failure = &junitMessage{Message: "regressed", Body: r.Reason}
			case baseline.Inconclusive:
				c.Skipped = &junitMessage{Message: "inconclusive: " + r.Reason}
			}
			suite.add(c)
		}
		root.Suites = append(root.Suites, suite)
	}
	departuresJUnit(&root, s)
	capacityJUnit(&root, s)
	if len(s.Skipped) > 0 || len(s.LabErrors) > 0 {
		suite := junitSuite{Name: "lab"}
		for _, sk := range s.Skipped {
			suite.add(junitCase{Name: "leg " + sk.Leg, Classname: "hal9lab.legs", Skipped: &junitMessage{Message: sk.Reason}})
		}
		for i, e := range s.LabErrors {
			suite.add(junitCase{Name: fmt.Sprintf("lab error %d", i+1), Classname: "hal9lab.lab", Failure: &junitMessage{Message: "lab error", Body: e}})
		}
		root.Suites = append(root.Suites, suite)
	}
	for _, su := range root.Suites {
		root.Tests += su.Tests
		root.Failures += su.Failures
		root.Skipped += su.Skipped
	}
	out, err := xml.MarshalIndent(root, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode junit: %w", err)
	}
	return append([]byte(xml.Header), append(out, '\n')...), nil
}
