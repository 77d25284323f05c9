//go:build !linux

package store

import "errors"

// uringSyncer exists only on Linux; elsewhere WAL syncs use fdatasync.
type uringSyncer struct{ onBreak func(error) }

func newUringSyncer() (*uringSyncer, error) {
	return nil, errors.New("io_uring is Linux only")
}

func (*uringSyncer) sync(uintptr, bool) error { return errors.New("io_uring is Linux only") }
func (*uringSyncer) close()                   {}
