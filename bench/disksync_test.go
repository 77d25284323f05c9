package bench

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestProbeDiskSync(t *testing.T) {
	dir := t.TempDir()
	d, err := ProbeDiskSync(context.Background(), dir, 150*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	l := d.Latency
	if l.Count < 1 || l.P50 <= 0 || l.Max < l.P99 || l.P99 < l.P50 || l.HDR == "" {
		t.Fatalf("latency %+v", l)
	}
	if d.Dir != dir || d.WriteBytes != diskSyncWrite || d.PauseUs != 500 || d.Call != datasyncCall {
		t.Fatalf("probe %+v", d)
	}
	// About one sync per pause at most: a probe that did not pause would
	// measure a disk under a load no server puts on it.
	if max := int64(150*time.Millisecond/diskSyncPause) + 2; l.Count > max {
		t.Fatalf("%d syncs in 150ms, want at most %d", l.Count, max)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Fatalf("the probe left %v", left)
	}
}

func TestProbeDiskSyncErrors(t *testing.T) {
	if _, err := ProbeDiskSync(context.Background(), t.TempDir(), 0); err == nil {
		t.Fatal("a zero duration was accepted")
	}
	if _, err := ProbeDiskSync(context.Background(), filepath.Join(t.TempDir(), "missing"), time.Millisecond); err == nil {
		t.Fatal("a missing directory was accepted")
	}
	// A cancelled probe writes nothing at all.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	dir := t.TempDir()
	if d, err := ProbeDiskSync(ctx, dir, time.Hour); err == nil {
		t.Fatalf("a cancelled probe: %+v", d)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Fatalf("a cancelled probe left %v", left)
	}
}
