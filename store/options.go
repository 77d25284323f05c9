package store

import (
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// walMinSyncInterval is the least time the WAL waits after one fsync before
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
// client up to the interval per request.
const walMinSyncInterval = 100 * time.Microsecond

// applyPebbleOptions sets the Pebble options that shape the commit path on
// po, which Open then opens db's Pebble database with.
func applyPebbleOptions(po *pebble.Options, db *DB) {
	if db.wo != pebble.Sync {
		return // NoSync commits do not wait for fsyncs
	}
	po.WALMinSyncInterval = func() time.Duration { return walMinSyncInterval }
}
