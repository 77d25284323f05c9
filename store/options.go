package store

import (
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// DefaultWALSyncInterval is the least time the WAL waits after one fsync before
// it starts the next (pebble.Options.WALMinSyncInterval).
//
// Without it, synced commits barely group when the server runs on one P
// (GOMAXPROCS=1, the measured setup): the first commit after an fsync wakes
// Pebble's WAL flusher, which runs next on the only P and issues the
// fdatasync for that one batch. The runtime takes the P back from a thread
// in a syscall only after sysmon has seen it there for a full tick (110-300
// µs in an execution trace), so for most of each fsync no handler runs and
// no request is read; the next fsync again carries one or two commits. With
// 64 connections that measured 1.4 commits per fdatasync, 3 600 req/s and
// the core half idle.
//
// Holding the next fsync back for a moment lets the handlers woken by the
// previous one, and the requests waiting in socket buffers, reach the commit
// queue first, so one fdatasync covers them all. Durability is unchanged:
// every commit still waits until an fsync that covers it has returned. The
// interval applies only between back-to-back syncs; 20 µs was too short to
// change anything (the timer fires before any handler has run), 50 µs to
// 2 ms all brought validate at c=64 near the CPU bound. It costs a lone
// client up to the interval per request, and more where the wait outlasts
// the fsync: Go's netpoller sleeps at least 1 ms for a sub-millisecond timer
// when nothing else runs, so on storage whose fsync is nearly free (the
// in-memory store of BenchmarkValidateInmemory: 82 us -> 400 us per
// sequential request) a lone client pays up to that. On this machine's disk,
// whose fsync takes longer than the wait, c=1 moved within its noise (p50
// 426-458 us before, 458-487 us after). Operators on fast-sync storage with
// few concurrent clients can turn it off (serve --wal-sync-interval 0).
const DefaultWALSyncInterval = 100 * time.Microsecond

// applyPebbleOptions sets the Pebble options that shape the commit path on
// po, which Open then opens db's Pebble database with; interval is
// Options.WALSyncInterval.
func applyPebbleOptions(po *pebble.Options, db *DB, interval time.Duration) {
	if db.wo != pebble.Sync {
		return // NoSync commits do not wait for fsyncs
	}
	switch {
	case interval < 0:
		return
	case interval == 0:
		interval = DefaultWALSyncInterval
	}
	po.WALMinSyncInterval = func() time.Duration { return interval }
}
