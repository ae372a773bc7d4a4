package capacity

import (
	"sync"
	"time"
)

// stallEvery is the stall meter's period: it sees stalls longer than a
// few of them (an SLO's latency bound is tens of milliseconds or more).
const stallEvery = 5 * time.Millisecond

// startStallMeter measures how late the lab process wakes up: a ticker
// every stallEvery; stop returns the longest lateness and the share of
// the time spent late (lateness of a millisecond or more, summed, over
// the time measured). On a shared machine the load generator is
// descheduled now and then; a stall sends the iterations due meanwhile in
// a burst, which queues at the server: a server loaded at ρ drains such a
// backlog at 1−ρ of real time, so a lab stalled a share s of the time
// shows queues from its own bursts at ρ above about 1−s (docs/capacity.md).
func startStallMeter() (stop func() (worst time.Duration, share float64)) {
	var worst, total time.Duration
	done := make(chan struct{})
	begin := time.Now()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(stallEvery)
		defer t.Stop()
		last := begin
		for {
			select {
			case <-done:
				return
			case <-t.C:
				now := time.Now() // the tick's own time is when it fired, not when this woke
				if late := now.Sub(last) - stallEvery; late >= time.Millisecond {
					worst = max(worst, late)
					total += late
				}
				last = now
			}
		}
	}()
	return func() (time.Duration, float64) {
		close(done)
		wg.Wait()
		return worst, total.Seconds() / time.Since(begin).Seconds()
	}
}
