package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/hal9-lab/hal9-lab/lab/report"
)

// runReport is `hal9-lab report DIR`: re-render report.md, report.html and
// junit.xml from DIR/summary.json.
func runReport(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: hal9-lab report DIR\n\nRe-renders report.md, report.html and junit.xml from DIR/summary.json.")
	}
	fs.SetOutput(os.Stderr)
	if err := fs.Parse(args); err != nil {
		return &exitError{code: 2, err: err}
	}
	if fs.NArg() != 1 {
		return &exitError{code: 2, err: fmt.Errorf("want exactly one run directory (e.g. reports/runs/20260501T030000Z), got %d arguments", fs.NArg())}
	}
	dir := fs.Arg(0)
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return &exitError{code: 2, err: fmt.Errorf("%s is not a directory", dir)}
	}
	paths, err := report.Render(dir)
	if err != nil {
		return err
	}
	for _, p := range paths {
		fmt.Println(p)
	}
	return nil
}
