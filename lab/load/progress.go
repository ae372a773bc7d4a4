package load

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
	"golang.org/x/term"
)

// progress shows a run's progress: mpb bars on a terminal (one per
// scenario: stage, VUs, RPS, p99, errors, time left), a plain line every
// 5 s otherwise.
type progress struct {
	e     *engine
	w     io.Writer
	tty   bool
	p     *mpb.Progress
	bars  []*mpb.Bar
	mu    sync.Mutex
	last  Point
	total struct{ reqs, errs int64 }
	lastL time.Time
	end   time.Duration
}

// IsTerminal reports whether w is a terminal with a known width (a pty
// without a size, as under some CI runners, gets the plain lines).
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return false
	}
	width, _, err := term.GetSize(int(f.Fd()))
	return err == nil && width > 0
}

func newProgress(e *engine, plan *Plan) *progress {
	pr := &progress{e: e, w: e.opts.Progress}
	for _, r := range e.runs {
		pr.end = max(pr.end, r.cfg.StartTime+r.cfg.ActiveDuration())
	}
	if pr.w == nil {
		return pr
	}
	pr.tty = IsTerminal(pr.w)
	if !pr.tty {
		fmt.Fprintf(pr.w, "load %s: %d scenario(s), about %s, target %s\n", plan.Name, len(e.runs), pr.end.Round(time.Second), e.opts.Target)
		pr.lastL = time.Now()
		return pr
	}
	pr.p = mpb.New(mpb.WithOutput(pr.w), mpb.WithWidth(30), mpb.WithRefreshRate(250*time.Millisecond))
	for _, r := range e.runs {
		r := r
		total := int64(r.cfg.StartTime+r.cfg.ActiveDuration()) / int64(time.Millisecond)
		bar := pr.p.AddBar(max(total, 1),
			mpb.PrependDecorators(decor.Name(r.cfg.Name, decor.WC{W: 12, C: decor.DindentRight}),
				decor.Any(func(decor.Statistics) string { return pr.stage(r) }, decor.WC{W: 14})),
			mpb.AppendDecorators(decor.Any(func(decor.Statistics) string { return pr.stats(r) })),
		)
		pr.bars = append(pr.bars, bar)
	}
	return pr
}

func (pr *progress) stage(r *scenarioRun) string {
	el := time.Since(pr.e.start) - r.cfg.StartTime
	if el < 0 {
		return "waiting"
	}
	switch r.cfg.Executor {
	case ConstantVUs, ConstantArrivalRate:
		if el >= r.cfg.ActiveDuration() {
			return "stopping"
		}
		return "steady"
	}
	var off time.Duration
	for i, s := range r.cfg.Stages {
		off += s.Duration
		if el < off {
			return fmt.Sprintf("stage %d/%d", i+1, len(r.cfg.Stages))
		}
	}
	return "stopping"
}

func (pr *progress) stats(r *scenarioRun) string {
	pr.mu.Lock()
	p := pr.last
	errs := pr.total.errs
	reqs := pr.total.reqs
	pr.mu.Unlock()
	left := r.cfg.StartTime + r.cfg.ActiveDuration() - time.Since(pr.e.start)
	if left < 0 {
		left = 0
	}
	return fmt.Sprintf("vus %d  it %d  rps %.0f  p99 %s  err %s  left %s",
		r.vus.Load(), r.completed.Load(), float64(p.Reqs), fmtMs(p.P99), errShare(errs, reqs), left.Round(time.Second))
}

func fmtMs(v float64) string {
	if v >= 1000 {
		return fmt.Sprintf("%.2fs", v/1000)
	}
	return fmt.Sprintf("%.0fms", v)
}

func errShare(errs, reqs int64) string {
	if reqs == 0 {
		return "0"
	}
	return fmt.Sprintf("%d (%.2f%%)", errs, 100*float64(errs)/float64(reqs))
}

func (pr *progress) update(p Point) {
	pr.mu.Lock()
	pr.last = p
	pr.total.reqs += p.Reqs
	pr.total.errs += p.Errors
	reqs, errs := pr.total.reqs, pr.total.errs
	pr.mu.Unlock()
	if pr.w == nil {
		return
	}
	el := time.Since(pr.e.start)
	if pr.tty {
		for i, b := range pr.bars {
			b.SetCurrent(min(int64(el/time.Millisecond), int64(pr.e.runs[i].cfg.StartTime+pr.e.runs[i].cfg.ActiveDuration())/int64(time.Millisecond)))
		}
		return
	}
	if time.Since(pr.lastL) < 5*time.Second {
		return
	}
	pr.lastL = time.Now()
	left := pr.end - el
	if left < 0 {
		left = 0
	}
	fmt.Fprintf(pr.w, "load %s/%s  vus %d  rps %d  p99 %s  irt p99 %s  reqs %d  errors %s  dropped %d  left %s\n",
		el.Round(time.Second), pr.end.Round(time.Second), p.VUs, p.Reqs, fmtMs(p.P99), fmtMs(p.IRTP99),
		reqs, errShare(errs, reqs), p.Dropped, left.Round(time.Second))
}

func (pr *progress) finish() {
	if pr.p != nil {
		for _, b := range pr.bars {
			b.SetTotal(-1, true)
		}
		pr.p.Wait()
	}
}
