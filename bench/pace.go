package bench

import (
	"context"
	"time"
)

// pacerPrecise is how close to its slot an open loop's worker hands its wait
// from the Go timer to the pacer's precise clock.
//
// Why not the Go timer alone: when the generator has nothing else to run,
// the runtime waits for its next timer in epoll_wait, whose timeout is in
// whole milliseconds, so a wait of 77 us (one slot at 13 000/s) lasts about
// a millisecond. Requests then leave in clumps up to a millisecond late, and
// since an open loop measures latency from the intended send time, that
// lateness shows as the server's latency (the ceiling's p90 at 13 000/s was
// 1.1 ms with the Go timer, 0.27 ms with the pacer; PERF.md).
const pacerPrecise = 2 * time.Millisecond

// waitUntil returns at t, or earlier (false) when ctx is done. A long wait
// sleeps on the Go timer, which ctx can interrupt, until pacerPrecise before
// t; the rest is slept on p's clock, which nothing interrupts but which
// wakes the generator within microseconds of t.
func (p *pacer) waitUntil(ctx context.Context, t time.Time, timer **time.Timer) bool {
	if d := time.Until(t) - pacerPrecise; d > 0 {
		if *timer == nil {
			*timer = time.NewTimer(d)
		} else {
			(*timer).Reset(d)
		}
		select {
		case <-ctx.Done():
			(*timer).Stop()
			return false
		case <-(*timer).C:
		}
	}
	if d := time.Until(t); d > 0 {
		p.sleep(d)
	}
	return ctx.Err() == nil
}
