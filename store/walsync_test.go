package store

import (
	"errors"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

func TestWALSyncFallback(t *testing.T) {
	// fdatasync on request, on the real file system.
	db, err := Open(Options{Dir: t.TempDir(), WALSync: WALSyncFdatasync})
	if err != nil {
		t.Fatal(err)
	}
	if got := db.WALSyncMethod(); got != WALSyncFdatasync {
		t.Errorf("WALSyncFdatasync store: method %v", got)
	}
	org, _ := newOrg(t, db, "acme")
	if err := db.PutTemplate(org.ID, "bob", []byte("t")); err != nil {
		t.Fatal(err)
	}
	db.Close()

	// Any other file system (in memory here; errorfs in failure tests)
	// sees every sync itself: auto keeps fdatasync, io_uring is refused.
	db, err = Open(Options{Dir: "db", FS: vfs.NewMem()})
	if err != nil {
		t.Fatal(err)
	}
	if got := db.WALSyncMethod(); got != WALSyncFdatasync {
		t.Errorf("in-memory store: method %v", got)
	}
	db.Close()
	if _, err := Open(Options{Dir: "db", FS: vfs.NewMem(), WALSync: WALSyncIOUring}); err == nil {
		t.Error("io_uring on an in-memory file system: no error")
	}
	if _, err := Open(Options{Dir: t.TempDir(), WALSync: 9}); !errors.Is(err, ErrWALSync) {
		t.Errorf("unknown method: %v", err)
	}
	// Relaxed durability waits for no sync: nothing to set up.
	db, err = Open(Options{Dir: t.TempDir(), Durability: Relaxed, WALSync: WALSyncIOUring})
	if err != nil {
		t.Fatal(err)
	}
	if got := db.WALSyncMethod(); got != WALSyncFdatasync {
		t.Errorf("relaxed store: method %v", got)
	}
	db.Close()
}

func TestParseWALSyncMethod(t *testing.T) {
	for s, want := range map[string]WALSyncMethod{"": WALSyncAuto, "auto": WALSyncAuto, "io_uring": WALSyncIOUring, "fdatasync": WALSyncFdatasync} {
		if got, err := ParseWALSyncMethod(s); err != nil || got != want {
			t.Errorf("%q: %v %v", s, got, err)
		}
		if s != "" && want.String() != s {
			t.Errorf("%v.String() = %q", want, want.String())
		}
	}
	if _, err := ParseWALSyncMethod("fsync"); !errors.Is(err, ErrWALSync) {
		t.Errorf("fsync: %v", err)
	}
}
