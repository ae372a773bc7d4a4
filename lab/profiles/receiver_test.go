package profiles

import (
	"bytes"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/pprof/profile"
	"github.com/grafana/pyroscope-go"
)

func TestParseIngestQuery(t *testing.T) {
	const sec = "1700000000"
	const ns = "1700000000000000000"
	tests := []struct {
		name    string
		query   string
		wantErr string
		check   func(t *testing.T, r IngestRequest)
	}{
		{name: "pyroscope-go nanoseconds", query: "name=hal9%7Bleg%3Dsqlite%2Cservice_name%3Dhal9%7D&from=" + ns + "&until=1700000010000000000&spyName=gospy&sampleRate=100&units=samples&aggregationType=sum",
			check: func(t *testing.T, r IngestRequest) {
				if r.App != "hal9" || r.Tags["leg"] != "sqlite" || r.Tags["service_name"] != "hal9" {
					t.Errorf("name parsed as %q %v", r.App, r.Tags)
				}
				if r.From.Unix() != 1700000000 || r.Until.Unix() != 1700000010 {
					t.Errorf("from/until = %v/%v", r.From, r.Until)
				}
				if r.SampleRate != 100 || r.SpyName != "gospy" || r.Units != "samples" || r.AggregationType != "sum" {
					t.Errorf("got %+v", r)
				}
			}},
		{name: "seconds", query: "name=app&from=" + sec + "&until=1700000015",
			check: func(t *testing.T, r IngestRequest) {
				if r.App != "app" || len(r.Tags) != 0 || r.Until.Sub(r.From) != 15*time.Second {
					t.Errorf("got %+v", r)
				}
			}},
		{name: "milliseconds", query: "name=app&from=1700000000000&until=1700000000500",
			check: func(t *testing.T, r IngestRequest) {
				if r.Until.Sub(r.From) != 500*time.Millisecond {
					t.Errorf("got %v", r.Until.Sub(r.From))
				}
			}},
		{name: "heap upload without units", query: "name=app%7B%7D&from=" + ns + "&until=" + ns + "&spyName=gospy&sampleRate=100&units=&aggregationType="},
		{name: "missing name", query: "from=" + sec + "&until=" + sec, wantErr: "name is required"},
		{name: "missing from", query: "name=a&until=" + sec, wantErr: "from is required"},
		{name: "bad from", query: "name=a&from=yesterday&until=" + sec, wantErr: "from=\"yesterday\""},
		{name: "negative until", query: "name=a&from=" + sec + "&until=-5", wantErr: "until=\"-5\""},
		{name: "until before from", query: "name=a&from=1700000010&until=1700000000", wantErr: "before from"},
		{name: "bad sampleRate", query: "name=a&from=" + sec + "&until=" + sec + "&sampleRate=fast", wantErr: "sampleRate"},
		{name: "bad aggregation", query: "name=a&from=" + sec + "&until=" + sec + "&aggregationType=max", wantErr: "aggregationType"},
		{name: "unclosed tags", query: "name=a%7Bk%3Dv&from=" + sec + "&until=" + sec, wantErr: "closed"},
		{name: "tag without value", query: "name=a%7Bk%7D&from=" + sec + "&until=" + sec, wantErr: "not key=value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, err := url.ParseQuery(tt.query)
			if err != nil {
				t.Fatal(err)
			}
			r, err := ParseIngestQuery(q)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.check != nil {
				tt.check(t, r)
			}
		})
	}
}

func TestIngestRejectsBadRequests(t *testing.T) {
	rec := NewReceiver(nil)
	srv := httptest.NewServer(rec)
	defer srv.Close()
	good := "?name=app&from=1700000000&until=1700000001"
	tests := []struct {
		name, method, path, ctype string
		body                      []byte
		want                      int
		wantMsg                   string
	}{
		{"bad from", "POST", "/ingest?name=app&from=x&until=1", "application/octet-stream", []byte("x"), 400, "from=\"x\""},
		{"get", "GET", "/ingest" + good, "", nil, 405, "POST"},
		{"other path", "POST", "/push" + good, "", nil, 404, "/ingest"},
		{"empty body", "POST", "/ingest" + good, "application/octet-stream", nil, 400, "empty body"},
		{"not pprof", "POST", "/ingest" + good, "application/octet-stream", []byte("hello"), 400, "not a pprof"},
		{"multipart without profile", "POST", "/ingest" + good, "", nil, 400, "no field profile"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body, ctype := tt.body, tt.ctype
			if tt.name == "multipart without profile" {
				var buf bytes.Buffer
				mw := multipart.NewWriter(&buf)
				fw, _ := mw.CreateFormFile("other", "x")
				fw.Write([]byte("x"))
				mw.Close()
				body, ctype = buf.Bytes(), mw.FormDataContentType()
			}
			req, _ := http.NewRequest(tt.method, srv.URL+tt.path, bytes.NewReader(body))
			if ctype != "" {
				req.Header.Set("Content-Type", ctype)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var msg bytes.Buffer
			msg.ReadFrom(resp.Body)
			if resp.StatusCode != tt.want || !strings.Contains(msg.String(), tt.wantMsg) {
				t.Errorf("got %d %q, want %d containing %q", resp.StatusCode, msg.String(), tt.want, tt.wantMsg)
			}
		})
	}
}

// busyWork burns CPU and allocates so both the CPU and the heap profile
// have a recognisable leaf function.
//
//go:noinline
func busyWork(deadline time.Time) (sink int) {
	for time.Now().Before(deadline) {
		for i := 0; i < 200000; i++ {
			sink += i * i % 7
		}
		sink += len(allocWork())
	}
	return sink
}

//go:noinline
func allocWork() []byte {
	b := make([]byte, 64<<10)
	b[0] = 1
	return b
}

// TestPyroscopeClient runs pyroscope-go's real client against the
// receiver, bounded to ~2 s of work.
func TestPyroscopeClient(t *testing.T) {
	rec := NewReceiver(nil)
	rec.SetLeg("sqlite")
	srv := httptest.NewServer(rec)
	defer srv.Close()

	prof, err := pyroscope.Start(pyroscope.Config{
		ApplicationName: "hal9-test",
		Tags:            map[string]string{"leg": "sqlite"},
		ServerAddress:   srv.URL,
		UploadRate:      500 * time.Millisecond,
		ProfileTypes:    []pyroscope.ProfileType{pyroscope.ProfileCPU, pyroscope.ProfileAllocSpace, pyroscope.ProfileAllocObjects, pyroscope.ProfileInuseSpace, pyroscope.ProfileGoroutines},
	})
	if err != nil {
		t.Fatal(err)
	}
	busyWork(time.Now().Add(1500 * time.Millisecond))
	prof.Flush(true) // Stop alone may drop queued uploads
	prof.Stop()

	types := rec.Types("sqlite")
	for _, want := range []string{"cpu", "heap", "goroutine"} {
		if !slices.Contains(types, want) {
			t.Fatalf("types received for leg sqlite = %v, want %s among them", types, want)
		}
	}
	if rec.Uploads("sqlite", "cpu") < 2 {
		t.Errorf("cpu uploads = %d, want several merged", rec.Uploads("sqlite", "cpu"))
	}
	s := rec.Summarize("sqlite", nil, 10)
	if len(s.TopCPU) == 0 || !anyHas(s.TopCPU, "busyWork") {
		t.Errorf("top CPU functions %v, want busyWork among them", names(s.TopCPU))
	}
	if len(s.TopAlloc) == 0 || !anyHas(s.TopAlloc, "allocWork") {
		t.Errorf("top alloc functions %v, want allocWork among them", names(s.TopAlloc))
	}
	var sum float64
	for _, f := range s.TopCPU {
		sum += f.Share
	}
	if sum <= 0 || sum > 1.0001 {
		t.Errorf("top CPU shares sum to %v, want in (0,1]", sum)
	}

	dir := t.TempDir()
	files, err := rec.WriteFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	cpuFile := filepath.Join(dir, "sqlite-cpu.pb.gz")
	if !slices.Contains(files, cpuFile) {
		t.Fatalf("files = %v, want %s", files, cpuFile)
	}
	p, err := ReadFile(cpuFile)
	if err != nil {
		t.Fatal(err)
	}
	if top, _ := TopFunctions(p, CPUSampleType, 5); !anyHas(top, "busyWork") {
		t.Errorf("re-read profile top %v lacks busyWork", names(top))
	}
	// go tool pprof opens it (when the go tool is at hand).
	if goBin, err := exec.LookPath(filepath.Join(runtime.GOROOT(), "bin", "go")); err == nil {
		out, err := exec.Command(goBin, "tool", "pprof", "-top", "-nodecount=5", cpuFile).CombinedOutput()
		if err != nil {
			t.Errorf("go tool pprof -top %s: %v\n%s", cpuFile, err, out)
		}
	}
}

func TestTopAndDiff(t *testing.T) {
	fa := &profile.Function{ID: 1, Name: "a"}
	fb := &profile.Function{ID: 2, Name: "b"}
	la := &profile.Location{ID: 1, Line: []profile.Line{{Function: fa}}}
	lb := &profile.Location{ID: 2, Line: []profile.Line{{Function: fb}}}
	mk := func(a, b int64) *profile.Profile {
		return &profile.Profile{
			SampleType: []*profile.ValueType{{Type: "samples", Unit: "count"}, {Type: "cpu", Unit: "nanoseconds"}},
			Sample: []*profile.Sample{
				{Location: []*profile.Location{la, lb}, Value: []int64{1, a}},
				{Location: []*profile.Location{lb}, Value: []int64{1, b}},
			},
			Location: []*profile.Location{la, lb}, Function: []*profile.Function{fa, fb},
		}
	}
	base, cur := mk(75, 25), mk(50, 50)
	top, err := TopFunctions(cur, "cpu", 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(top) != 1 || top[0].Name != "a" || top[0].Share != 0.5 {
		t.Errorf("top = %+v", top) // a wins the tie by name
	}
	d, err := Diff(base, cur, "cpu", 5)
	if err != nil {
		t.Fatal(err)
	}
	if len(d) != 1 || d[0].Name != "b" || d[0].BaseShare != 0.25 || d[0].Delta != 0.25 {
		t.Errorf("diff = %+v, want b grew by 0.25", d)
	}
	if _, err := TopFunctions(cur, "alloc_space", 3); err == nil || !strings.Contains(err.Error(), "no sample type") {
		t.Errorf("missing sample type: err = %v", err)
	}
}

func TestReadFileMissing(t *testing.T) {
	if _, err := ReadFile(filepath.Join(t.TempDir(), "nope.pb.gz")); err == nil || !os.IsNotExist(unwrapAll(err)) {
		t.Errorf("err = %v", err)
	}
}

func unwrapAll(err error) error {
	for {
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return err
		}
		err = u.Unwrap()
	}
}

func anyHas(fs []FuncShare, sub string) bool {
	for _, f := range fs {
		if strings.Contains(f.Name, sub) {
			return true
		}
	}
	return false
}

func names(fs []FuncShare) []string {
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = f.Name
	}
	return out
}
