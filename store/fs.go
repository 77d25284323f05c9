package store

import (
	"strings"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// storeFS is the file system Pebble runs on: the given one, with table
// files (*.sst, written only by flushes, compactions and ingestion) that
// give way to requests (yield.go) and, when sy is set, WAL files (*.log)
// whose syncs go through io_uring so that waiting for one does not hold the
// P (uring_linux.go). Manifests, options files and reads are untouched.
type storeFS struct {
	vfs.FS
	y  *yielder
	sy *uringSyncer
}

func (fs storeFS) Create(name string, cat vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.Create(name, cat)
	if err != nil {
		return f, err
	}
	return fs.wrap(name, f), nil
}

func (fs storeFS) ReuseForWrite(oldname, newname string, cat vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.ReuseForWrite(oldname, newname, cat)
	if err != nil {
		return f, err
	}
	return fs.wrap(newname, f), nil
}

func (fs storeFS) wrap(name string, f vfs.File) vfs.File {
	switch {
	case strings.HasSuffix(name, ".sst"):
		return yieldFile{File: f, y: fs.y}
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

// yieldFile is a table file being written.
type yieldFile struct {
	vfs.File
	y *yielder
}

func (f yieldFile) Write(p []byte) (int, error) {
	f.y.maybeYield()
	return f.File.Write(p)
}
