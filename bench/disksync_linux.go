package bench

import (
	"os"

	"golang.org/x/sys/unix"
)

// datasync makes f's data durable without its metadata, as Pebble's WAL
// syncs do on Linux.
func datasync(f *os.File) error { return unix.Fdatasync(int(f.Fd())) }

const datasyncCall = "fdatasync"
