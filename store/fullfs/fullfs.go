// Package fullfs is a Pebble file system whose disk fills up: after a
// budget of bytes has been written, writes and syncs fail with ENOSPC, as
// a real disk's do, until Free. It is how countersign's tests make the
// store's disk full without a small real file system to fill (which needs
// a mount a test cannot rely on).
package fullfs

import (
	"os"
	"strings"
	"sync/atomic"
	"syscall"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// FS is a vfs.FS whose files share a budget of bytes. A write that would
// take the bytes written past the budget writes nothing and answers
// ENOSPC, wrapped in an *os.PathError as the os package returns it; once
// the budget is used, syncs answer ENOSPC too (a real disk with delayed
// allocation reports a full disk at the sync). Creating, renaming and
// removing files are not counted: a full disk usually still has inodes.
type FS struct {
	vfs.FS
	// exempt: files whose name ends so are written past the budget.
	exempt  []string
	budget  atomic.Int64
	used    atomic.Int64
	refused atomic.Int64
}

// New wraps inner with a budget of bytes.
func New(inner vfs.FS, budget int64) *FS {
	fs := &FS{FS: inner}
	fs.budget.Store(budget)
	return fs
}

// Exempt lets files whose names end in suffix (".log") write past the
// budget, as a recycled write-ahead log reuses space it already holds while
// new tables find none. Call it before the file system is used.
func (fs *FS) Exempt(suffix string) { fs.exempt = append(fs.exempt, suffix) }

// Free lifts the budget: the disk has space again.
func (fs *FS) Free() { fs.budget.Store(1<<63 - 1) }

// Full reports whether the budget is used up.
func (fs *FS) Full() bool { return fs.used.Load() >= fs.budget.Load() }

// Refused counts the writes and syncs answered ENOSPC.
func (fs *FS) Refused() int64 { return fs.refused.Load() }

// Unwrap is the file system under the budget.
func (fs *FS) Unwrap() vfs.FS { return fs.FS }

func (fs *FS) Create(name string, cat vfs.DiskWriteCategory) (vfs.File, error) {
	return fs.file(name)(fs.FS.Create(name, cat))
}

func (fs *FS) ReuseForWrite(oldname, newname string, cat vfs.DiskWriteCategory) (vfs.File, error) {
	return fs.file(newname)(fs.FS.ReuseForWrite(oldname, newname, cat))
}

func (fs *FS) OpenReadWrite(name string, cat vfs.DiskWriteCategory, opts ...vfs.OpenOption) (vfs.File, error) {
	return fs.file(name)(fs.FS.OpenReadWrite(name, cat, opts...))
}

// file wraps what opening name for writing returned.
func (fs *FS) file(name string) func(vfs.File, error) (vfs.File, error) {
	return func(f vfs.File, err error) (vfs.File, error) {
		if err != nil {
			return f, err
		}
		for _, s := range fs.exempt {
			if strings.HasSuffix(name, s) {
				return f, nil
			}
		}
		return &file{File: f, fs: fs, name: name}, nil
	}
}

// take reserves n bytes of the budget, or answers ENOSPC for op.
func (fs *FS) take(op, name string, n int) error {
	if fs.used.Add(int64(n)) > fs.budget.Load() {
		fs.used.Add(-int64(n))
		return fs.noSpace(op, name)
	}
	return nil
}

// syncable answers ENOSPC for a sync once the budget is used.
func (fs *FS) syncable(name string) error {
	if fs.Full() {
		return fs.noSpace("sync", name)
	}
	return nil
}

func (fs *FS) noSpace(op, name string) error {
	fs.refused.Add(1)
	return &os.PathError{Op: op, Path: name, Err: syscall.ENOSPC}
}

type file struct {
	vfs.File
	fs   *FS
	name string
}

func (f *file) Write(p []byte) (int, error) {
	if err := f.fs.take("write", f.name, len(p)); err != nil {
		return 0, err
	}
	return f.File.Write(p)
}

func (f *file) WriteAt(p []byte, off int64) (int, error) {
	if err := f.fs.take("write", f.name, len(p)); err != nil {
		return 0, err
	}
	return f.File.WriteAt(p, off)
}

func (f *file) Sync() error {
	if err := f.fs.syncable(f.name); err != nil {
		return err
	}
	return f.File.Sync()
}

func (f *file) SyncData() error {
	if err := f.fs.syncable(f.name); err != nil {
		return err
	}
	return f.File.SyncData()
}

func (f *file) SyncTo(length int64) (bool, error) {
	if err := f.fs.syncable(f.name); err != nil {
		return false, err
	}
	return f.File.SyncTo(length)
}
