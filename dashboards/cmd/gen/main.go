// Command gen writes HAL9's Grafana dashboards as JSON: go run ./dashboards/cmd/gen -out dashboards
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/hal9-lab/hal9-lab/dashboards"
)

func main() {
	fs := flag.NewFlagSet("gen", flag.ContinueOnError)
	out := fs.String("out", "dashboards", "directory to write the dashboard JSON files into (must exist)")
	if err := fs.Parse(os.Args[1:]); err != nil {
		os.Exit(2)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "gen: unexpected arguments %q; usage: gen -out DIR\n", fs.Args())
		os.Exit(2)
	}
	if err := dashboards.Write(*out); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}
