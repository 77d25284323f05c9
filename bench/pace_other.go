//go:build !linux

package bench

import "time"

// pacer is a worker's clock for open loops. Off Linux it is the Go timer,
// whose waits may end up to a millisecond late when the generator is idle.
type pacer struct{}

func newPacer() *pacer { return &pacer{} }

func (p *pacer) precise() bool { return false }

func (p *pacer) sleep(d time.Duration) { time.Sleep(d) }

func (p *pacer) close() {}
