package capacity

import (
	"sync"
	"time"
)

// stallEvery is the stall meter's sleep: it sees stalls longer than a
// few of them (an SLO's latency bound is tens of milliseconds or more).
const stallEvery = 5 * time.Millisecond

// startStallMeter measures how late the lab process runs a goroutine that
// is ready: it sleeps stallEvery again and again and takes how much longer
// than that each sleep lasted (the wait to be run again; overshoots under
// a millisecond, timer slack, are left out). stop returns the longest and
// the share of the measured time they add up to. On a shared machine the
// load generator is descheduled now and then, and when the lab's own
// goroutines fill its cores it falls behind too; either way the
// iterations due meanwhile go out late in a burst, which queues at the
// server: a server loaded at ρ drains such a backlog at 1−ρ of real time,
// so a lab late a share s of the time shows queues of its own making at ρ
// above about 1−s (docs/capacity.md).
func startStallMeter() (stop func() (worst time.Duration, share float64)) {
	var worst, total time.Duration
	done := make(chan struct{})
	begin := time.Now()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTimer(stallEvery)
		defer t.Stop()
		for {
			asleep := time.Now()
			select {
			case <-done:
				return
			case <-t.C:
			}
			if late := time.Since(asleep) - stallEvery; late >= time.Millisecond {
				worst = max(worst, late)
				total += late
			}
			t.Reset(stallEvery)
		}
	}()
	return func() (time.Duration, float64) {
		close(done)
		wg.Wait()
		return worst, total.Seconds() / time.Since(begin).Seconds()
	}
}
