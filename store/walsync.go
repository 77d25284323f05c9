package store

import (
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// WALSyncMethod is how the store syncs its write-ahead log (and, with
// io_uring, the tables that flushes and compactions write, on a ring of
// their own).
type WALSyncMethod uint8

const (
	// WALSyncAuto syncs through io_uring where the kernel allows it and
	// with fdatasync otherwise. The default.
	WALSyncAuto WALSyncMethod = iota
	// WALSyncIOUring syncs through io_uring and fails Open where it cannot.
	WALSyncIOUring
	// WALSyncFdatasync calls fdatasync on the goroutine that syncs, as
	// Pebble does by itself.
	WALSyncFdatasync
)

// ErrWALSync: Options.WALSync is not a known method.
var ErrWALSync = errors.New("store: WAL sync method must be auto, io_uring or fdatasync")

// ParseWALSyncMethod parses "auto", "io_uring" or "fdatasync".
func ParseWALSyncMethod(s string) (WALSyncMethod, error) {
	switch s {
	case "auto", "":
		return WALSyncAuto, nil
	case "io_uring":
		return WALSyncIOUring, nil
	case "fdatasync":
		return WALSyncFdatasync, nil
	}
	return 0, ErrWALSync
}

func (m WALSyncMethod) String() string {
	switch m {
	case WALSyncAuto:
		return "auto"
	case WALSyncIOUring:
		return "io_uring"
	case WALSyncFdatasync:
		return "fdatasync"
	}
	return fmt.Sprintf("WALSyncMethod(%d)", uint8(m))
}

// setupWALSync prepares the io_uring syncers that storeFS gives WAL files
// and table files, unless the method or the file system rules it out. Only
// a file system with real descriptors can use them: an in-memory one syncs
// for free.
func (db *DB) setupWALSync(m WALSyncMethod, fs vfs.FS) error {
	if m > WALSyncFdatasync {
		return ErrWALSync
	}
	if m == WALSyncFdatasync || db.wo != pebble.Sync {
		return nil
	}
	if !realFS(fs) {
		if m == WALSyncIOUring {
			return fmt.Errorf("store: WAL sync through io_uring needs the operating system's file system")
		}
		return nil
	}
	for _, dst := range []**uringSyncer{&db.uring, &db.uringTables} {
		u, err := newUringSyncer()
		switch {
		case err == nil:
			*dst = u
			u.onBreak = func(err error) {
				db.log.Error("syncs fall back to fdatasync: an io_uring ring failed", "err", err.Error())
			}
		case m == WALSyncIOUring:
			db.closeWALSync()
			return fmt.Errorf("store: WAL sync through io_uring: %w", err)
		default:
			db.closeWALSync()
			db.log.Info("WAL syncs use fdatasync: io_uring is unavailable", "reason", err.Error())
			return nil
		}
	}
	return nil
}

// realFS reports whether fs is the operating system's, unwrapped: a
// wrapper (tests inject failures with errorfs) must see every sync, and
// io_uring would go around it.
func realFS(fs vfs.FS) bool { return fs == vfs.Default }

func (db *DB) closeWALSync() {
	for _, u := range []**uringSyncer{&db.uring, &db.uringTables} {
		if *u != nil {
			(*u).close()
			*u = nil
		}
	}
}

// WALSyncMethod reports how WAL syncs are issued: WALSyncIOUring or
// WALSyncFdatasync (never Auto), or Fdatasync under Relaxed durability,
// which does not wait for syncs.
func (db *DB) WALSyncMethod() WALSyncMethod {
	if db.uring != nil {
		return WALSyncIOUring
	}
	return WALSyncFdatasync
}
