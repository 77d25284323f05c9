package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"
)

// DiskSync is how long the file system under the server's data took to
// make a small write durable, measured beside the load: every answer of a
// server with durability sync waits for at least one such sync (of the
// write-ahead log), so its latency is a floor under validate's, and a
// reader of a run's tail needs it to tell the disk from the server.
type DiskSync struct {
	Dir string `json:"dir"`
	// WriteBytes are written before each sync, at the next offset of a
	// file filled in advance (as Pebble reuses WAL files), so a sync makes
	// data durable and no file size or block allocation.
	WriteBytes int `json:"writeBytes"`
	// PauseUs is the pause after each sync: one sync at a time, at about
	// the rate a busy server's log syncs.
	PauseUs float64 `json:"pauseUs"`
	// Call is the system call timed: fdatasync, or fsync where there is
	// none.
	Call string `json:"call"`
	// Latency is of each Call.
	Latency Latency `json:"latency"`
}

// Disk-sync probe shape: 2 KiB per sync (about a group of synced
// decisions), a 4 MiB file, and a 500 us pause after each sync (with the
// sync itself, some 1 400 syncs a second, about what the WAL does under the
// validate closed loop).
const (
	diskSyncWrite = 2 << 10
	diskSyncFile  = 4 << 20
	diskSyncPause = 500 * time.Microsecond
)

// ProbeDiskSync writes and syncs a scratch file in dir for about d, one
// sync at a time, and returns the syncs' latency. The file is removed
// before it returns. It stops early, with what it measured, when ctx ends.
func ProbeDiskSync(ctx context.Context, dir string, d time.Duration) (*DiskSync, error) {
	if d <= 0 {
		return nil, errors.New("bench: the disk-sync probe needs a positive duration")
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(dir, ".countersign-disk-probe-")
	if err != nil {
		return nil, fmt.Errorf("bench: disk-sync probe: %w", err)
	}
	defer func() {
		_ = f.Close()
		_ = os.Remove(f.Name())
	}()
	// Fill the file first, so that the measured syncs overwrite allocated
	// blocks within the file's size, as a reused WAL file does; not with
	// zeros, which a compressing file system or a thin virtual disk may
	// keep as holes, nor may any storage layer skip the measured writes.
	block := make([]byte, 64<<10)
	for i := range block {
		block[i] = byte(i*7 + 1)
	}
	for off := 0; off < diskSyncFile; off += len(block) {
		if _, err := f.Write(block); err != nil {
			return nil, fmt.Errorf("bench: disk-sync probe: %w", err)
		}
	}
	if err := f.Sync(); err != nil {
		return nil, fmt.Errorf("bench: disk-sync probe: %w", err)
	}
	rec := block[:diskSyncWrite]
	// The pause on the pacer's clock: the Go timer would stretch it to a
	// millisecond when nothing else runs (pace.go).
	pc := newPacer()
	defer pc.close()
	h := newHistogram()
	end := time.Now().Add(d)
	off := int64(0)
	for time.Now().Before(end) && ctx.Err() == nil {
		if _, err := f.WriteAt(rec, off); err != nil {
			return nil, fmt.Errorf("bench: disk-sync probe: %w", err)
		}
		t0 := time.Now()
		if err := datasync(f); err != nil {
			return nil, fmt.Errorf("bench: disk-sync probe: %w", err)
		}
		recordLatency(h, time.Since(t0))
		if off += diskSyncWrite; off+diskSyncWrite > diskSyncFile {
			off = 0
		}
		pc.sleep(diskSyncPause)
	}
	return &DiskSync{
		Dir:        dir,
		Call:       datasyncCall,
		WriteBytes: diskSyncWrite,
		PauseUs:    float64(diskSyncPause) / 1e3,
		Latency:    summarize(h),
	}, nil
}
