package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/hal9-lab/hal9-lab/lab"
	"github.com/hal9-lab/hal9-lab/lab/baseline"
	"github.com/hal9-lab/hal9-lab/lab/history"
	"github.com/hal9-lab/hal9-lab/lab/readings"
	"github.com/hal9-lab/hal9-lab/lab/report"
)

const historyUsage = `usage: hal9-lab history COMMAND [flags]

  add [flags] RUN_DIR...        add runs', gates' or baseline updates' summary.json
  import [flags] --csv FILE     add rows time,commit,machine,leg,scenario,metric,value[,profile][,op]
  check [flags]                 change points per series; exit 99 on a regression in the window
  report [flags] --out DIR      write DIR/trend.html: every series over time, its change points

The history is --history URL, else $HAL9_HISTORY, else sqlite://reports/history.db:
sqlite://PATH or postgres://user:pass@host:5432/db. Run 'hal9-lab history COMMAND -h' for flags.`

// runHistory is `hal9-lab history`: the nightly history and its check.
func runHistory(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprintln(os.Stderr, historyUsage)
		if len(args) == 0 {
			return &exitError{code: 2, err: errors.New("want a command: add, import, check or report")}
		}
		return nil
	}
	cmds := map[string]func(context.Context, []string) error{
		"add": historyAdd, "import": historyImport, "check": historyCheck, "report": historyReport,
	}
	run, ok := cmds[args[0]]
	if !ok {
		return &exitError{code: 2, err: fmt.Errorf("unknown command %q: want add, import, check or report", args[0])}
	}
	return run(ctx, args[1:])
}

// historyFlagSet is a history command's flag set, its usage text above
// its flags.
func historyFlagSet(name, usage string) *flag.FlagSet {
	fs := flag.NewFlagSet("history "+name, flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), usage+"\n\nflags:")
		fs.PrintDefaults()
	}
	return fs
}

// historyFlags are the flags every history command has.
type historyFlags struct {
	url string
}

func (f *historyFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.url, "history", "", "the history: sqlite://PATH or postgres://… (default $"+history.EnvURL+", else sqlite://reports/history.db)")
}

// open opens the history the flags, $HAL9_HISTORY or the default name.
func (f *historyFlags) open(ctx context.Context) (*history.Store, error) {
	u := f.url
	if u == "" {
		u = os.Getenv(history.EnvURL)
	}
	if u == "" {
		root, err := repoRoot()
		if err != nil {
			root = "."
		}
		u = history.DefaultURL(root)
	}
	return history.Open(ctx, u)
}

func historyAdd(ctx context.Context, args []string) error {
	fs := historyFlagSet("add", "usage: hal9-lab history add [flags] RUN_DIR...\n\nAdds each run's, gate's or baseline update's summary.json (a directory or the file) to the\nhistory: the values the gate judges, per leg, scenario and repetition; for a gate that ran\n--against, also each metric's ratio to the reference run interleaved with it. Adding a run\ntwice changes nothing. Interrupted runs and runs with lab errors are refused.")
	var f historyFlags
	f.register(fs)
	fs.SetOutput(os.Stderr)
	if err := fs.Parse(args); err != nil {
		return flagErr(err)
	}
	if fs.NArg() == 0 {
		return &exitError{code: 2, err: errors.New("want one or more run directories (e.g. reports/runs/20260501T030000Z)")}
	}
	st, err := f.open(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	var failed []string
	for _, dir := range fs.Args() {
		path := dir
		if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
			path = filepath.Join(dir, report.SummaryFile)
		}
		sum, err := report.Load(path)
		if err != nil {
			failed = append(failed, err.Error())
			continue
		}
		run, err := history.FromSummary(sum, readings.LegSamples, path, resolveReference(ctx, sum))
		if err != nil {
			failed = append(failed, err.Error())
			continue
		}
		added, err := st.Add(ctx, run)
		switch {
		case err != nil:
			failed = append(failed, err.Error())
		case !added:
			fmt.Printf("%s: already in the history (run %s)\n", dir, run.ID)
		default:
			fmt.Printf("%s: added %s %s of %s at %s, %d values (run %s)\n", dir, run.Command, run.Profile, run.Time.Format("2006-01-02 15:04"), history.ShortCommit(run.Commit), len(run.Values), run.ID)
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("%d of %d not added:\n  %s", len(failed), fs.NArg(), strings.Join(failed, "\n  "))
	}
	return nil
}

var commitHash = regexp.MustCompile(`^[0-9a-f]{40}$`)

// resolveReference names the commit a gate --against REF compared with, so
// that its ratios are grouped by what they are ratios to: REF as given
// when it is already a hash; HEAD-relative refs (HEAD~1) from the
// summary's own commit, since HEAD has moved since; others as git resolves
// them now (a branch may have moved: add a gate's run right after it). A
// ref git cannot resolve (a --reference-bin path) is kept as written.
func resolveReference(ctx context.Context, sum *report.RunSummary) string {
	if sum.Gate == nil || sum.Gate.Mode != "against" {
		return ""
	}
	ref := sum.Gate.Against
	if commitHash.MatchString(ref) {
		return ref
	}
	if rest, ok := strings.CutPrefix(ref, "HEAD"); ok && sum.Commit != "" && (rest == "" || strings.ContainsAny(rest[:1], "~^")) {
		ref = sum.Commit + rest
	}
	out, err := exec.CommandContext(ctx, "git", "rev-parse", "--verify", "--quiet", ref+"^{commit}").Output()
	if err != nil {
		fmt.Fprintf(os.Stderr, "history add: the gate's reference %q is not a commit here; its ratios are grouped by that name\n", sum.Gate.Against)
		return sum.Gate.Against
	}
	return strings.TrimSpace(string(out))
}

func historyImport(ctx context.Context, args []string) error {
	fs := historyFlagSet("import", "usage: hal9-lab history import [flags] --csv FILE\n\nAdds rows from elsewhere (or synthetic ones). Rows sharing time, commit, machine and profile\nare one night; several rows of one series in a night are its repetitions (the night's point is\ntheir median). time: RFC 3339 or YYYY-MM-DD. Importing the same rows twice changes nothing.")
	var f historyFlags
	f.register(fs)
	csvPath := fs.String("csv", "", "CSV file: a header time,commit,machine,leg,scenario,metric,value (optional: profile, op), one value a row")
	if err := parseFlags(fs, args); err != nil {
		return flagErr(err)
	}
	if *csvPath == "" {
		return &exitError{code: 2, err: errors.New("--csv FILE: which file to import")}
	}
	in, err := os.Open(*csvPath)
	if err != nil {
		return &exitError{code: 2, err: fmt.Errorf("--csv: %w", err)}
	}
	defer in.Close()
	runs, err := history.ReadCSV(in, *csvPath)
	if err != nil {
		return err
	}
	st, err := f.open(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	added, values := 0, 0
	for _, r := range runs {
		ok, err := st.Add(ctx, r)
		if err != nil {
			return err
		}
		if ok {
			added++
			values += len(r.Values)
		}
	}
	fmt.Printf("%s: %d nights, %d added (%d values), %d already in %s\n", *csvPath, len(runs), added, values, len(runs)-added, st)
	return nil
}

// checkFlags are check's and report's.
type checkFlags struct {
	historyFlags
	profile   string
	window    int
	minChange string
	sig       float64
}

func (f *checkFlags) register(fs *flag.FlagSet) {
	f.historyFlags.register(fs)
	d := history.DefaultOptions()
	fs.StringVar(&f.profile, "profile", "", "only this profile's series (default: every profile)")
	fs.IntVar(&f.window, "window", d.Window, "a regression among a series' last N nights fails the check (exit 99)")
	fs.StringVar(&f.minChange, "min-change", fmt.Sprintf("%g%%", 100*d.MinChange), "the smallest step reported, relative to the level before it (error and cache hit rates: half the gate's minimum effect in points)")
	fs.Float64Var(&f.sig, "significance", d.WindowSignificance, "the window's level: a regression there needs p below it after Benjamini–Hochberg over every series (the false-discovery rate)")
}

func (f *checkFlags) options() (history.Options, error) {
	o := history.DefaultOptions()
	if f.window < 1 {
		return o, fmt.Errorf("--window %d: want at least 1 night", f.window)
	}
	if f.sig <= 0 || f.sig >= 1 {
		return o, fmt.Errorf("--significance %v: want a level in (0,1), e.g. 0.01", f.sig)
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(f.minChange), "%")), 64)
	if err != nil || v < 0 || math.IsInf(v, 0) || !strings.HasSuffix(strings.TrimSpace(f.minChange), "%") {
		return o, fmt.Errorf("--min-change %q: want a percentage such as 2%%", f.minChange)
	}
	o.Window, o.WindowSignificance, o.MinChange = f.window, f.sig, v/100
	return o, nil
}

func historyCheck(ctx context.Context, args []string) error {
	fs := historyFlagSet("check", "usage: hal9-lab history check [flags]\n\nFinds change points in every series (E-divisive, Matteson & James 2014, with a permutation\ntest seeded from the data; a single bad night is set aside first). Exit 99 when a series\nchanged for the worse within its last --window nights; improvements are reported, exit 0;\n1 when the check could not run.")
	var f checkFlags
	f.register(fs)
	export := fs.String("summary-export", "", `write the change points as JSON: {"change_points":[{"leg","scenario","op","metric","index","time","commit","before","after","change","p","direction",…}]}`)
	gateReport := fs.String("gate-report", "", "a gate's report directory: add a History section (the window's change points) to its report.md and report.html, and write trend.html beside them")
	url, res, err := f.check(ctx, fs, args, nil)
	if err != nil {
		return err
	}
	if *export != "" {
		if err := history.WriteExport(*export, res); err != nil {
			return err
		}
	}
	if *gateReport != "" {
		if err := addHistoryToReport(*gateReport, url, res); err != nil {
			return err
		}
	}
	printCheck(url, res)
	if n := len(res.Regressions()); n > 0 {
		return &exitError{code: lab.ExitRegressed, err: fmt.Errorf("%d series regressed within their last %d nights (see above)", n, res.Window)}
	}
	return nil
}

// check parses check's or report's flags (need: the command's own
// required ones) and checks the history.
func (f *checkFlags) check(ctx context.Context, fs *flag.FlagSet, args []string, need func() error) (string, history.Result, error) {
	if err := parseFlags(fs, args); err != nil {
		return "", history.Result{}, flagErr(err)
	}
	if need != nil {
		if err := need(); err != nil {
			return "", history.Result{}, &exitError{code: 2, err: err}
		}
	}
	o, err := f.options()
	if err != nil {
		return "", history.Result{}, &exitError{code: 2, err: err}
	}
	st, err := f.open(ctx)
	if err != nil {
		return "", history.Result{}, err
	}
	defer st.Close()
	res, err := history.CheckProfile(ctx, st, f.profile, o)
	return st.String(), res, err
}

// addHistoryToReport writes trend.html into a gate's report directory and
// rewrites its reports with a History section: the change points within
// the window, regressions first.
func addHistoryToReport(dir, url string, res history.Result) error {
	path := filepath.Join(dir, report.SummaryFile)
	sum, err := report.Load(path)
	if err != nil {
		return fmt.Errorf("--gate-report %s: %w", dir, err)
	}
	trend, err := history.WriteTrend(dir, res, url)
	if err != nil {
		return err
	}
	h := &report.History{URL: url, Window: res.Window, Judged: res.Judged, Trend: filepath.Base(trend)}
	var better []report.HistoryPoint
	for _, c := range res.ChangePoints {
		if !c.InWindow {
			h.Earlier++
			continue
		}
		unit := baseline.Unit(c.Metric)
		if c.Kind == history.Ratio {
			unit = "× ref"
		}
		p := report.HistoryPoint{
			Series: fmt.Sprintf("%s %s [%s: %s]", c.Profile, c.Key, c.Kind, c.Group), Direction: c.Direction,
			Index: c.Index, Time: c.Time, PreviousCommit: c.PreviousCommit, Commit: c.Commit,
			Before: c.Before, After: c.After, Unit: unit, Change: c.Change, P: c.P,
		}
		if c.Direction == history.Regression {
			h.Points = append(h.Points, p)
		} else {
			better = append(better, p)
		}
	}
	h.Points = append(h.Points, better...)
	sum.History = h
	if _, err := report.WriteAll(dir, sum); err != nil {
		return fmt.Errorf("--gate-report %s: %w", dir, err)
	}
	return nil
}

// printCheck prints one line per change point, the window's regressions
// first.
func printCheck(url string, res history.Result) {
	fmt.Printf("history %s: %d series checked, %d shown only (too short, or ratios to a moving reference); window %d nights\n",
		url, res.Judged, res.Shown, res.Window)
	if res.BadNights > 0 {
		fmt.Printf("single bad nights set aside: %d\n", res.BadNights)
	}
	line := func(c history.ChangePoint) {
		what := strings.ToUpper(c.Direction)
		if !c.InWindow {
			what = c.Direction + " (before the window)"
		}
		unit := baseline.Unit(c.Metric)
		if c.Kind == history.Ratio {
			unit = "× ref"
		}
		fmt.Printf("  %s  %s %s [%s: %s]: %+.1f%% (%.4g → %.4g %s) at night #%d %s, commits %s..%s, p %.4f\n",
			what, c.Profile, c.Key, c.Kind, c.Group, 100*c.Change, c.Before, c.After, unit, c.Index, c.Time.Format("2006-01-02"),
			history.ShortCommit(c.PreviousCommit), history.ShortCommit(c.Commit), c.P)
	}
	regs := res.Regressions()
	for _, c := range regs {
		line(c)
	}
	for _, c := range res.ChangePoints {
		if !c.InWindow || c.Direction != history.Regression {
			line(c)
		}
	}
	if len(regs) == 0 {
		fmt.Println("no regression in the window")
	}
}

func historyReport(ctx context.Context, args []string) error {
	fs := historyFlagSet("report", "usage: hal9-lab history report [flags] --out DIR\n\nWrites DIR/trend.html, one self-contained page (no network): every series night after night,\ngrouped by profile, leg and scenario, and op, with the check's change points and the commit\nrange before each marked.")
	var f checkFlags
	f.register(fs)
	out := fs.String("out", "", "directory to write trend.html into")
	url, res, err := f.check(ctx, fs, args, func() error {
		if *out == "" {
			return errors.New("--out DIR: where to write trend.html")
		}
		return nil
	})
	if err != nil {
		return err
	}
	p, err := history.WriteTrend(*out, res, url)
	if err != nil {
		return err
	}
	fmt.Println(p)
	return nil
}

// flagErr lets -h end quietly and makes other flag errors exit 2.
func flagErr(err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return err
	}
	return &exitError{code: 2, err: err}
}
