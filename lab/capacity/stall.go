package capacity

import (
	"sync"
	"time"
)

// stallEvery is the stall meter's period: it sees stalls longer than a
// few of them (an SLO's latency bound is tens of milliseconds or more).
const stallEvery = 5 * time.Millisecond

// startStallMeter measures how late the lab process wakes up: a ticker
// every stallEvery, and the longest gap beyond it until stop is called.
// On a shared machine the load generator is descheduled now and then; a
// stall longer than an SLO's latency bound sends the step's iterations in
// a burst that queues at the server, so a failure with such a stall says
// as much about the machine as about the server (docs/capacity.md).
func startStallMeter() (stop func() time.Duration) {
	var (
		mu    sync.Mutex
		worst time.Duration
	)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(stallEvery)
		defer t.Stop()
		last := time.Now()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				now := time.Now() // the tick's own time is when it fired, not when this woke
				if late := now.Sub(last) - stallEvery; late > 0 {
					mu.Lock()
					worst = max(worst, late)
					mu.Unlock()
				}
				last = now
			}
		}
	}()
	return func() time.Duration {
		close(done)
		wg.Wait()
		return worst
	}
}
