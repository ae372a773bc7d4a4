package history

import (
	"strings"
	"testing"
)

func TestReadCSV(t *testing.T) {
	in := `metric,value,time,commit,machine,leg,scenario,op,profile
http_req_duration_p95_ms,300,2026-05-01,aaa,box,sqlite,mix,,nightly
http_req_duration_p95_ms,310,2026-05-01,aaa,box,sqlite,mix,,nightly
http_req_duration_p95_ms,120,2026-05-01,aaa,box,sqlite,mix,login,nightly
http_req_duration_p95_ms,305,2026-05-02T03:00:00Z,bbb,box,sqlite,mix,,nightly
http_req_duration_p95_ms,305,2026-05-02T03:00:00Z,bbb,other box,sqlite,mix,,nightly
`
	runs, err := ReadCSV(strings.NewReader(in), "h.csv")
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 3 {
		t.Fatalf("%d runs, want 3 (one per time, commit, machine, profile)", len(runs))
	}
	r := runs[0]
	if r.Profile != "nightly" || r.Commit != "aaa" || r.Machine != "box" || r.Command != "csv" || len(r.Values) != 3 {
		t.Fatalf("first run %+v", r)
	}
	if r.Values[0].Repetition != 1 || r.Values[1].Repetition != 2 || r.Values[2].Op != "login" || r.Values[2].Repetition != 1 {
		t.Errorf("repetitions and ops: %+v", r.Values)
	}
	if runs[1].ID == runs[2].ID || runs[0].ID == runs[1].ID {
		t.Error("two runs share an id")
	}
	again, _ := ReadCSV(strings.NewReader(in), "h.csv")
	if again[0].ID != r.ID {
		t.Error("the same rows gave another run id: importing twice would duplicate them")
	}
}

func TestReadCSVErrors(t *testing.T) {
	const head = "time,commit,machine,leg,scenario,metric,value\n"
	cases := []struct{ name, in, want string }{
		{"empty", "", "empty file"},
		{"header only", head, "no rows"},
		{"missing column", "time,commit,leg,scenario,metric,value\n", "line 1: missing column(s) machine"},
		{"unknown column", "time,commit,machine,leg,scenario,metric,value,colour\n", `line 1: unknown column "colour"`},
		{"twice", "time,time,commit,machine,leg,scenario,metric,value\n", `column "time" twice`},
		{"bad time", head + "2026-05-01,a,m,sqlite,mix,p95,1\nyesterday,a,m,sqlite,mix,p95,1\n", `line 3: time "yesterday"`},
		{"bad value", head + "2026-05-01,a,m,sqlite,mix,p95,fast\n", `line 2: value "fast"`},
		{"infinite value", head + "2026-05-01,a,m,sqlite,mix,p95,Inf\n", `line 2: value "Inf"`},
		{"no metric", head + "2026-05-01,a,m,sqlite,mix,,3\n", "line 2: empty metric"},
		{"fields", head + "2026-05-01,a,m,sqlite,mix,p95\n", "line 2"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ReadCSV(strings.NewReader(c.in), "h.csv")
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "h.csv") {
				t.Errorf("err = %v, want one naming h.csv and %q", err, c.want)
			}
		})
	}
}
