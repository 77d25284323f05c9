package store

import (
	"strings"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// storeFS is the file system Pebble runs on: the given one, with table
// files (*.sst, written only by flushes, compactions and ingestion) that
// give way to requests (yield.go), and, when the syncers are set, WAL files
// (*.log, sy) and table files (tsy) whose syncs go through io_uring so that
// waiting for one does not hold the P (uring_linux.go). Two rings, because a
// ring carries one sync at a time and the WAL's must not queue behind a
// table's (a flushed table's final sync took 1.4-1.8 ms in a trace, holding
// the only P). Manifests, options files and reads are otherwise untouched.
// With db set, every file opened for writing fails the store when a write
// to it fails (writeWatch, failure.go).
type storeFS struct {
	vfs.FS
	y   *yielder
	sy  *uringSyncer
	tsy *uringSyncer
	db  *DB
}

func (fs storeFS) Create(name string, cat vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.Create(name, cat)
	if err != nil {
		fs.createFailed(name, err)
		return f, err
	}
	return fs.wrap(name, f), nil
}

func (fs storeFS) ReuseForWrite(oldname, newname string, cat vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.ReuseForWrite(oldname, newname, cat)
	if err != nil {
		fs.createFailed(newname, err)
		return f, err
	}
	return fs.wrap(newname, f), nil
}

func (fs storeFS) OpenReadWrite(name string, cat vfs.DiskWriteCategory, opts ...vfs.OpenOption) (vfs.File, error) {
	f, err := fs.FS.OpenReadWrite(name, cat, opts...)
	if err != nil || fs.db == nil {
		return f, err
	}
	return writeWatch{File: f, db: fs.db, name: name}, nil
}

func (fs storeFS) createFailed(name string, err error) {
	if fs.db != nil {
		fs.db.createFailed(name, err)
	}
}

// wrap is the file Pebble gets for f, created as name for writing.
func (fs storeFS) wrap(name string, f vfs.File) vfs.File {
	f = fs.wrapSync(name, f)
	if fs.db != nil {
		f = writeWatch{File: f, db: fs.db, name: name}
	}
	return f
}

// wrapSync gives table and log files their yielding and syncs.
func (fs storeFS) wrapSync(name string, f vfs.File) vfs.File {
	switch {
	case strings.HasSuffix(name, ".sst"):
		yf := yieldFile{File: f, y: fs.y}
		if fs.tsy != nil && f.Fd() != vfs.InvalidFd {
			yf.sy = fs.tsy
		}
		return yf
	case strings.HasSuffix(name, ".log") && fs.sy != nil && f.Fd() != vfs.InvalidFd:
		return uringFile{File: f, sy: fs.sy}
	}
	return f
}

// uringFile is a WAL file whose syncs go through io_uring.
type uringFile struct {
	vfs.File
	sy *uringSyncer
}

func (f uringFile) SyncData() error { return f.sy.sync(f.Fd(), true) }
func (f uringFile) Sync() error     { return f.sy.sync(f.Fd(), false) }

func (fs storeFS) Unwrap() vfs.FS { return fs.FS }

// yieldFile is a table file being written; with sy, its syncs go through
// io_uring.
type yieldFile struct {
	vfs.File
	y  *yielder
	sy *uringSyncer
}

func (f yieldFile) SyncData() error {
	if f.sy != nil {
		return f.sy.sync(f.Fd(), true)
	}
	return f.File.SyncData()
}

func (f yieldFile) Sync() error {
	if f.sy != nil {
		return f.sy.sync(f.Fd(), false)
	}
	return f.File.Sync()
}

func (f yieldFile) Write(p []byte) (int, error) {
	f.y.maybeYield()
	return f.File.Write(p)
}
