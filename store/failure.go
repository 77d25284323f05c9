package store

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// A write to the disk that fails (ENOSPC, EDQUOT, EIO, anything) ends the
// store's life in this process. Pebble's own answers to such a failure do
// not end it: a failed flush or compaction is retried at once and forever
// (no backoff; each attempt logs a background error), memtables pile up
// behind it until every write stalls with no answer, and Close waits for
// calls stuck in that stall. A failed log write is worse: the batch may
// already be readable from the memtable without being durable. So the
// first failed write, wherever Pebble makes it, fails the store: every
// later call answers errFull or ErrFatal at once, reads included, and the
// server answers 503 and exits (a restart recovers every acknowledged write
// from the log once space is back). Recovering in place when space returns
// is not attempted: Pebble cannot be told which of its in-memory state a
// failed write left undurable.

// errFull is what calls answer once a write failed for want of space. It
// wraps both ErrFull, which names the cause, and ErrFatal, which says what
// it means for the store, so code that handles ErrFatal needs no change.
var errFull = fmt.Errorf("%w (%w)", ErrFull, ErrFatal)

// failedCloseWait bounds Close once the store has failed: Pebble may be
// retrying a flush that cannot succeed, or hold a commit that will never
// return, and waiting for them would keep the process from exiting. The
// log already holds every acknowledged write, so giving up on a clean close
// loses nothing.
const failedCloseWait = 3 * time.Second

// backgroundLogInterval is the least time between two log lines of Pebble
// background errors that do not fail the store (a read error in a table's
// statistics, say), so that an error Pebble retries at once cannot flood
// the log; the lines in between are counted in the next one.
const backgroundLogInterval = time.Minute

// diskFull reports whether err is the disk refusing a write for want of
// space or quota.
func diskFull(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// writeFailed records that a write to the disk failed with err (op names
// what was written) and fails the store. Only the first failure is logged:
// one line for the state change, however many writes meet it.
func (db *DB) writeFailed(op string, err error) {
	if diskFull(err) {
		// Set before dead, so a call that sees dead sees the cause too.
		db.full.Store(true)
	}
	db.dead.Store(true)
	db.failOnce.Do(func() {
		if diskFull(err) {
			db.log.Error("store: the disk is full; refusing every call until restarted with space freed",
				"op", op, "err", err)
		} else {
			db.log.Error("store: a write to the disk failed; refusing every call until restarted",
				"op", op, "err", err)
		}
		close(db.failed)
	})
}

// failure is what a call answers once the store has failed.
func (db *DB) failure() error {
	if db.full.Load() {
		return errFull
	}
	return ErrFatal
}

// Failed returns a channel closed when the store fails for good: a write to
// the disk failed (Full then says whether for want of space), or Pebble
// gave up. From then on every call answers an error wrapping ErrFatal; the
// process should stop serving from the store and exit, and a restart
// recovers every acknowledged write from the log.
func (db *DB) Failed() <-chan struct{} { return db.failed }

// Full reports whether the store failed because its disk is full.
func (db *DB) Full() bool { return db.full.Load() }

// backgroundError is Pebble's BackgroundError listener. A full disk fails
// the store (failed writes are also caught by writeWatch, this catches the
// rest); once failed, Pebble's retries of the same flush are only counted;
// any other background error is logged at most once a backgroundLogInterval.
func (db *DB) backgroundError(err error) {
	if diskFull(err) {
		db.writeFailed("background", err)
	}
	if db.dead.Load() {
		db.bgSuppressed.Add(1)
		return
	}
	now := time.Now().UnixNano()
	last := db.bgLogged.Load()
	if now-last < int64(backgroundLogInterval) || !db.bgLogged.CompareAndSwap(last, now) {
		db.bgSuppressed.Add(1)
		return
	}
	db.log.Error("store: pebble background error", "err", err, "suppressedBefore", db.bgSuppressed.Swap(0))
}

// closeBounded closes the store with close, waiting for it for as long as
// it takes while the store is healthy, and at most failedCloseWait once the
// store has failed (before or during the close).
func (db *DB) closeBounded(close func() error) error {
	done := make(chan error, 1)
	go func() { done <- close() }()
	select {
	case err := <-done:
		return err
	case <-db.failed:
	}
	t := time.NewTimer(failedCloseWait)
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-t.C:
		return ErrCloseTimeout
	}
}

// writeWatch is a file Pebble writes (a log, a table, a manifest), whose
// failed writes and syncs fail the store (writeFailed).
type writeWatch struct {
	vfs.File
	db   *DB
	name string
}

// failedWritePause is how long a failed write waits before it answers.
// Pebble retries a failed flush at once and for ever (no backoff), which
// would keep a core spinning on writes that cannot succeed while the
// server drains; paused, the retries cost nothing, and the calls that meet
// a failed write are few, since none enters a failed store.
const failedWritePause = 50 * time.Millisecond

func (f writeWatch) failed(op string, err error) {
	f.db.writeFailed(op+" "+f.name, err)
	time.Sleep(failedWritePause)
}

func (f writeWatch) Write(p []byte) (int, error) {
	n, err := f.File.Write(p)
	if err != nil {
		f.failed("write", err)
	}
	return n, err
}

func (f writeWatch) WriteAt(p []byte, off int64) (int, error) {
	n, err := f.File.WriteAt(p, off)
	if err != nil {
		f.failed("write", err)
	}
	return n, err
}

func (f writeWatch) Sync() error {
	err := f.File.Sync()
	if err != nil {
		f.failed("sync", err)
	}
	return err
}

func (f writeWatch) SyncData() error {
	err := f.File.SyncData()
	if err != nil {
		f.failed("sync", err)
	}
	return err
}

func (f writeWatch) SyncTo(length int64) (bool, error) {
	full, err := f.File.SyncTo(length)
	if err != nil {
		f.failed("sync", err)
	}
	return full, err
}

// Preallocate is only a hint to Pebble, which goes on when it fails; only
// a full disk is worth failing the store for, as the writes will fail next.
func (f writeWatch) Preallocate(off, length int64) error {
	err := f.File.Preallocate(off, length)
	if err != nil && diskFull(err) {
		f.failed("preallocate", err)
	}
	return err
}

// createFailed fails the store when a file could not be created for want
// of space (or inodes). Other errors of Create are the caller's to judge.
func (db *DB) createFailed(name string, err error) {
	var pe *os.PathError
	if diskFull(err) || (errors.As(err, &pe) && diskFull(pe.Err)) {
		db.writeFailed("create "+name, err)
	}
}

// failureState is the part of DB that records its failure; embedded so
// that DB's field list keeps its order.
type failureState struct {
	// dead is set by the first failed write (writeFailed) or Pebble's
	// Fatalf (see deadOnFatal); from then on every call answers failure().
	dead atomic.Bool
	// full: the failure was the disk refusing a write for want of space.
	full     atomic.Bool
	failed   chan struct{} // closed by the first failure
	failOnce sync.Once
	// fatalLogged: a Fatalf has been logged; the commits that meet the
	// same failed log write each call Fatalf, and one line is enough.
	fatalLogged atomic.Bool
	// bgLogged is when a background error was last logged (unix ns);
	// bgSuppressed counts those not logged since.
	bgLogged     atomic.Int64
	bgSuppressed atomic.Uint64
}
