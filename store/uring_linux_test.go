package store

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// uringOrSkip returns a syncer, or skips where the kernel (or a seccomp
// profile) refuses io_uring: the store then falls back to fdatasync, which
// TestWALSyncFallback covers.
func uringOrSkip(t *testing.T) *uringSyncer {
	t.Helper()
	u, err := newUringSyncer()
	if err != nil {
		t.Skipf("io_uring unavailable here: %v", err)
	}
	t.Cleanup(u.close)
	return u
}

func TestUringSyncReportsTheKernelsAnswer(t *testing.T) {
	u := uringOrSkip(t)
	f, err := os.Create(filepath.Join(t.TempDir(), "wal.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for i := range 50 {
		if _, err := f.Write([]byte("record\n")); err != nil {
			t.Fatal(err)
		}
		if err := u.sync(f.Fd(), i%2 == 0); err != nil {
			t.Fatalf("sync %d: %v", i, err)
		}
	}
	// A descriptor that is not open: the error comes back from the kernel
	// through the completion, it is not swallowed.
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	fd := w.Fd()
	r.Close()
	w.Close()
	if err := u.sync(fd, true); !errors.Is(err, unix.EBADF) {
		t.Fatalf("sync of a closed descriptor: %v, want EBADF", err)
	}
	if u.broken {
		t.Fatal("a sync's own error marked the ring broken")
	}
	// An operation the kernel refuses (fsync of a pipe: EINVAL) says the
	// ring cannot be trusted: the syncer falls back to fdatasync, which
	// answers for itself, and keeps working.
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	defer pw.Close()
	if err := u.sync(pw.Fd(), true); !errors.Is(err, unix.EINVAL) {
		t.Fatalf("sync of a pipe: %v, want EINVAL", err)
	}
	if !u.broken {
		t.Fatal("a refused operation did not mark the ring broken")
	}
	if err := u.sync(f.Fd(), true); err != nil {
		t.Fatalf("sync after the fallback: %v", err)
	}
	u.close()
	if err := u.sync(f.Fd(), true); !errors.Is(err, errUringClosed) {
		t.Fatalf("sync after close: %v", err)
	}
}

// TestUringSyncWaitsInTheNetpoller: a goroutine waiting for a sync is
// parked in the netpoller ("IO wait"), not inside a system call holding its
// P, which is the point of the syncer. A sync of tens of MiB of dirty pages
// lasts long enough to look; on storage where it does not, the test skips.
func TestUringSyncWaitsInTheNetpoller(t *testing.T) {
	u := uringOrSkip(t)
	f, err := os.Create(filepath.Join(t.TempDir(), "wal.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 1<<20)
	for round := range 5 {
		for range 32 {
			if _, err := f.Write(chunk); err != nil {
				t.Fatal(err)
			}
		}
		done := make(chan error, 1)
		go func() { done <- u.sync(f.Fd(), true) }()
		buf := make([]byte, 1<<20)
		inSyscall := 0 // consecutive looks that found it in a system call
		for {
			select {
			case err := <-done:
				if err != nil {
					t.Fatal(err)
				}
			default:
				n := runtime.Stack(buf, true)
				for _, g := range strings.Split(string(buf[:n]), "\n\n") {
					if !strings.Contains(g, "uringSyncer).sync") {
						continue
					}
					if strings.Contains(g, "[IO wait") {
						<-done
						return
					}
					// Submitting is a system call of microseconds; one
					// that is still there look after look is the sync.
					if inSyscall++; !strings.Contains(g, "[syscall") {
						inSyscall = 0
					} else if inSyscall == 5 {
						t.Fatalf("round %d: the syncing goroutine waits inside a system call:\n%s", round, g)
					}
				}
				time.Sleep(50 * time.Microsecond)
				continue
			}
			break
		}
	}
	t.Skip("every sync finished before it could be observed (fast storage)")
}

// A store on the real file system syncs its WAL through io_uring by
// default, and what it acknowledged is there after a reopen.
func TestWALSyncThroughUring(t *testing.T) {
	uringOrSkip(t)
	dir := t.TempDir()
	db, err := Open(Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if got := db.WALSyncMethod(); got != WALSyncIOUring {
		t.Fatalf("WALSyncMethod = %v, want io_uring", got)
	}
	org, _ := newOrg(t, db, "acme")
	if err := db.PutTemplate(org.ID, "alice", []byte("tmpl")); err != nil {
		t.Fatal(err)
	}
	// A flush writes a table and syncs it on the tables' ring.
	if err := db.pdb.Flush(); err != nil {
		t.Fatal(err)
	}
	if db.uring.synced.Load() == 0 || db.uringTables.synced.Load() == 0 {
		t.Fatalf("syncs through the rings: WAL %d, tables %d", db.uring.synced.Load(), db.uringTables.synced.Load())
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db, err = Open(Options{Dir: dir, WALSync: WALSyncIOUring})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if got, err := db.Template(org.ID, "alice"); err != nil || string(got) != "tmpl" {
		t.Fatalf("after reopen: %q %v", got, err)
	}
}
