package lab

import (
	"context"
	"slices"

	"github.com/hal9-lab/hal9-lab/lab/profile"
	"github.com/hal9-lab/hal9-lab/lab/report"
)

// Run is `hal9-lab run`: for each backend, its infrastructure, the leg's
// repetitions, then the reports. The summary is returned (and written)
// even when interrupted.
func Run(ctx context.Context, opts Options) (*report.RunSummary, error) {
	s, err := NewSession(ctx, opts)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	bin, err := s.Binary(ctx)
	if err != nil {
		return nil, err
	}
	err = s.eachBackend(ctx, func(i int, b *Backend) {
		for rep := 1; rep <= s.opts.Repetitions && ctx.Err() == nil; rep++ {
			leg := s.RunLeg(ctx, LegSpec{Backend: b, Run: rep, Runs: s.opts.Repetitions, Bin: bin, RateLimitCheck: rateLimitOn(s.opts.Profile, b.Name, i) && rep == 1})
			s.summary.Legs = append(s.summary.Legs, leg)
		}
	})
	if err != nil {
		return nil, err
	}
	s.prog.setLeg("lab")
	return s.Finish(ctx)
}

// rateLimitOn: the check runs on the backends it names, else on the first.
func rateLimitOn(p *profile.Profile, backend string, index int) bool {
	if p.RateLimit == nil {
		return false
	}
	if len(p.RateLimit.Backends) > 0 {
		return slices.Contains(p.RateLimit.Backends, backend)
	}
	return index == 0
}
