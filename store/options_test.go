package store

import (
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// TestWALMinSyncInterval keeps synced commits grouping on one P: a synced
// store holds the next fsync back by the interval (DefaultWALSyncInterval
// unless set; see options.go for the measurement), a negative interval turns
// that off, and a relaxed store, whose commits wait for no fsync, never waits.
func TestWALMinSyncInterval(t *testing.T) {
	for _, tc := range []struct {
		wo       *pebble.WriteOptions
		interval time.Duration
		want     time.Duration // 0: not set
	}{
		{pebble.Sync, 0, DefaultWALSyncInterval},
		{pebble.Sync, 250 * time.Microsecond, 250 * time.Microsecond},
		{pebble.Sync, -1, 0},
		{pebble.NoSync, 0, 0},
	} {
		po := &pebble.Options{}
		applyPebbleOptions(po, &DB{wo: tc.wo}, tc.interval)
		var got time.Duration
		if po.WALMinSyncInterval != nil {
			got = po.WALMinSyncInterval()
		}
		if got != tc.want {
			t.Errorf("sync=%v interval=%v: WALMinSyncInterval %v, want %v", tc.wo.Sync, tc.interval, got, tc.want)
		}
	}
}
