package lab

import (
	"context"
	"slices"

	"github.com/hal9-lab/hal9-lab/lab/backend"
	"github.com/hal9-lab/hal9-lab/lab/profile"
	"github.com/hal9-lab/hal9-lab/lab/report"
)

// Run is `hal9-lab run`: for each backend, its infrastructure, the leg's
// repetitions, then the reports. The summary is returned (and written)
// even when interrupted.
func Run(ctx context.Context, opts Options) (*report.RunSummary, error) {
	s, err := newSession(ctx, opts)
	if err != nil {
		return nil, err
	}
	defer s.close()
	bin, err := s.binary(ctx)
	if err != nil {
		return nil, err
	}
	err = s.eachBackend(ctx, func(i int, b *backend.Backend) {
		for rep := 1; rep <= s.opts.Repetitions && ctx.Err() == nil; rep++ {
			s.addLeg(s.runLeg(ctx, legSpec{backend: b, run: rep, runs: s.opts.Repetitions, bin: bin, rateLimitCheck: rateLimitOn(s.opts.Profile, b.Name, i) && rep == 1}))
		}
	})
	if err != nil {
		return nil, err
	}
	s.prog.setLeg("lab")
	return s.finish(ctx)
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
