package lab

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// progress prints the lab's own steps ("which leg, which step"); the
// engine prints its own bars or lines to the same writer during load.
type progress struct {
	mu    sync.Mutex
	w     io.Writer
	start time.Time
	leg   string
}

func newProgress(w io.Writer) *progress {
	if w == nil {
		w = io.Discard
	}
	return &progress{w: w, start: time.Now()}
}

// setLeg names the leg following steps belong to.
func (p *progress) setLeg(leg string) {
	p.mu.Lock()
	p.leg = leg
	p.mu.Unlock()
}

// step prints one line: elapsed time, leg, step.
func (p *progress) step(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	el := time.Since(p.start).Round(time.Second)
	leg := p.leg
	if leg == "" {
		leg = "lab"
	}
	fmt.Fprintf(p.w, "[%6s] %-26s %s\n", el, leg, fmt.Sprintf(format, args...))
}
