package migrations

import (
	"strings"
	"testing"
	"testing/fstest"
)

func TestLoad(t *testing.T) {
	tests := []struct {
		name    string
		files   fstest.MapFS
		want    []string // names in order
		wantErr string
	}{
		{"ordered by number, not by name", fstest.MapFS{
			"m/0010_late.sql":  {Data: []byte("c")},
			"m/0002_mid.sql":   {Data: []byte("b")},
			"m/0001_first.sql": {Data: []byte("a")},
			"m/README.md":      {Data: []byte("not a migration")},
		}, []string{"0001_first.sql", "0002_mid.sql", "0010_late.sql"}, ""},
		{"bad name", fstest.MapFS{"m/first.sql": {Data: []byte("a")}}, nil, "positive number"},
		{"zero version", fstest.MapFS{"m/0000_x.sql": {Data: []byte("a")}}, nil, "positive number"},
		{"duplicate version", fstest.MapFS{
			"m/0001_a.sql": {Data: []byte("a")},
			"m/1_b.sql":    {Data: []byte("b")},
		}, nil, "share version 1"},
		{"empty dir", fstest.MapFS{}, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Load(tt.files, "m")
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, m := range got {
				names = append(names, m.Name)
			}
			if strings.Join(names, ",") != strings.Join(tt.want, ",") {
				t.Fatalf("got %v, want %v", names, tt.want)
			}
			if len(got) > 0 && got[0].SQL != "a" {
				t.Fatalf("first migration's SQL = %q, want %q", got[0].SQL, "a")
			}
		})
	}
}
