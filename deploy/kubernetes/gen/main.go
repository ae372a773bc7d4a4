// Command gen writes the generated files of deploy/kubernetes (the
// PrometheusRule, the dashboard and scenario ConfigMaps' sources):
//
//	go run ./deploy/kubernetes/gen [-root .]   (make manifests)
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/hal9-lab/hal9-lab/deploy/kubernetes"
)

func main() {
	fs := flag.NewFlagSet("gen", flag.ContinueOnError)
	root := fs.String("root", ".", "the repository's root directory")
	if err := fs.Parse(os.Args[1:]); err != nil {
		os.Exit(2)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "gen: unexpected arguments %q; usage: gen [-root DIR]\n", fs.Args())
		os.Exit(2)
	}
	files, err := kubernetes.Generate(*root)
	if err == nil {
		err = kubernetes.Write(*root, files)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
	fmt.Printf("wrote %d files under %s and %s\n", len(files), kubernetes.MonitoringDir, kubernetes.LoadtestDir)
}
