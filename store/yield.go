package store

import (
	"sync/atomic"
	"time"
)

// Background table writes give way to requests.
//
// Pebble flushes memtables and compacts tables on goroutines of its own,
// and writes each table through two goroutines that hand every data block
// from one to the other over an unbuffered channel (sstable.RawColumnWriter:
// the builder and drainWriteQueue). With GOMAXPROCS=1 (the measured
// deployment: one pinned core) that pair keeps the only P to itself: each
// hand-off makes the other runnable in the P's next slot, the scheduler
// never runs out of local work, so it neither polls the network nor, except
// once every 61 switches, looks at the global queue where sysmon puts the
// connections that became readable. A runtime execution trace under an open
// loop at 6 000 validates/s showed the pair holding 75-80% of the core for
// 30-100 ms at a time while all 64 connections waited; that, not queueing,
// was the open-loop p99 of 35-50 ms (PERF.md, "Background work on one P").
//
// storeFS (fs.go) wraps the file system so that a table writer gives way:
// while the store is serving (a foreground call entered it within
// yieldIdle), a write to a table file that comes yieldEvery or more after
// the last pause sleeps for yieldSleep first. Sleeping, unlike
// runtime.Gosched, parks the writer, and its partner soon blocks on the
// channel, so the scheduler finds no local work, polls the network and runs
// the requests that arrived. A store with no call for yieldIdle never
// sleeps, so flushes and compactions run at full speed when nothing waits
// for the P; nor does one whose writes Pebble is stalling (the requests then
// wait for the writer, not for the P; the DB's event listener sets stall).
//
// The cost is background throughput while requests are served: with
// requests to run, the writer gets about half of the core; between
// requests less, since Go's timers sleep at least a millisecond when
// nothing else is runnable. That only ever slows background work while
// calls keep arriving at least every yieldIdle, and a write stall lifts
// it, so the tree cannot grow without bound. It trades a few percent of
// closed-loop throughput for tails an order of magnitude shorter.
const (
	yieldEvery = 100 * time.Microsecond
	yieldSleep = 100 * time.Microsecond
	yieldIdle  = 5 * time.Millisecond
)

// yielder decides when a background table writer sleeps. One per DB; safe
// for concurrent writers (a race at worst makes two of them sleep).
type yielder struct {
	stall  atomic.Bool   // Pebble is holding writes back: never pause then
	call   atomic.Int64  // clock of the latest foreground call (touch)
	last   atomic.Int64  // clock of the last pause (or check while idle)
	yields atomic.Uint64 // pauses so far (DB.BackgroundYields)
	base   time.Time
	sleep  func(time.Duration) // time.Sleep; tests count calls instead
}

func newYielder() *yielder {
	y := &yielder{base: time.Now(), sleep: time.Sleep}
	y.call.Store(-int64(yieldIdle) - 1) // idle until a call is made
	return y
}

// clock is monotonic nanoseconds since the yielder was made.
func (y *yielder) clock() int64 { return int64(time.Since(y.base)) }

// touch records a foreground call (DB.enter). Requests starved by a writer
// make no calls, so "serving" is a call within yieldIdle, not since the
// writer's last check.
func (y *yielder) touch() { y.call.Store(y.clock()) }

// maybeYield is called by a table writer before each write (a write is at
// most a few KiB of an already built block, so this is frequent enough).
func (y *yielder) maybeYield() {
	now := y.clock()
	if now-y.last.Load() < int64(yieldEvery) {
		return
	}
	y.last.Store(now)
	if now-y.call.Load() > int64(yieldIdle) || y.stall.Load() {
		// No request for a while: run flat out. Or Pebble is stalling
		// writes until this flush or compaction catches up: the requests
		// are waiting for the writer, not for the P.
		return
	}
	y.yields.Add(1)
	y.sleep(yieldSleep)
	y.last.Store(y.clock())
}

// BackgroundYields counts the pauses table writers took to let requests
// run (see yield.go). Exported on /metrics.
func (db *DB) BackgroundYields() uint64 { return db.yield.yields.Load() }
