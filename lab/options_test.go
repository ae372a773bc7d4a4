package lab_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hal9-lab/hal9-lab/lab"
	"github.com/hal9-lab/hal9-lab/lab/profile"
)

func TestOptionsValidate(t *testing.T) {
	dir := t.TempDir()
	notBinary := filepath.Join(dir, "notes.txt")
	os.WriteFile(notBinary, []byte("hi"), 0o644)
	tests := []struct {
		name      string
		in        lab.Options
		wantInfra string
		wantErr   string
	}{
		{"default is process", lab.Options{}, "", ""},
		{"auto infra", lab.Options{Infra: "auto"}, "", ""},
		{"process keeps infra", lab.Options{Server: "process", Infra: "process"}, "process", ""},
		{"unknown infra", lab.Options{Infra: "docker"}, "", `--infra "docker": use auto, external, testcontainers or process`},
		{"too many replicas", lab.Options{Replicas: 17}, "", "--replicas 17: want 1..16"},
		{"negative scale", lab.Options{Scale: -1}, "", "--scale -1: want a positive factor"},
		{"huge scale", lab.Options{Scale: 1000}, "", "--scale 1000"},
		{"bad pyroscope", lab.Options{PyroscopeURL: "pyroscope:4040"}, "", `--pyroscope-url "pyroscope:4040"`},
		{"missing binary", lab.Options{HalBin: filepath.Join(dir, "hal9")}, "", "not an executable file"},
		{"a directory as binary", lab.Options{HalBin: dir}, "", "not an executable file"},
		{"container: auto becomes testcontainers", lab.Options{Server: "container"}, "testcontainers", ""},
		{"container: testcontainers", lab.Options{Server: "container", Infra: "testcontainers"}, "testcontainers", ""},
		{"container: process infra", lab.Options{Server: "container", Infra: "process"}, "", "drop --infra process"},
		{"container: external infra", lab.Options{Server: "container", Infra: "external"}, "", "drop --infra external"},
		{"container: pgbouncer", lab.Options{Server: "container", PgBouncer: true}, "", "drop --pgbouncer"},
		{"container: the profile's pgbouncer", lab.Options{Server: "container", Profile: &profile.Profile{ReplicaSettings: profile.ReplicaSettings{PgBouncer: true}}}, "", "drop --pgbouncer"},
		{"container: loopback pyroscope", lab.Options{Server: "container", PyroscopeURL: "http://localhost:4040"}, "", "give an address they reach"},
		{"container: other pyroscope", lab.Options{Server: "container", PyroscopeURL: "http://pyroscope.example:4040"}, "testcontainers", ""},
		{"container: not an ELF binary", lab.Options{Server: "container", HalBin: notBinary}, "", "not an ELF executable"},
		{"unknown server", lab.Options{Server: "vm"}, "", `--server "vm": use process or container`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := tt.in
			err := o.Validate()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if o.Infra != tt.wantInfra || (o.Server != lab.ServerModeProcess && o.Server != lab.ServerModeContainer) {
				t.Errorf("infra %q server %q, want infra %q", o.Infra, o.Server, tt.wantInfra)
			}
		})
	}
	o := lab.Options{HalBin: notBinary}
	if err := o.Validate(); err != nil || !filepath.IsAbs(o.HalBin) {
		t.Errorf("a process binary need not be static: %v; HalBin %q made absolute", err, o.HalBin)
	}
}
