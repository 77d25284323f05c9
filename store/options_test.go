package store

import (
	"testing"

	"github.com/cockroachdb/pebble/v2"
)

// TestWALMinSyncInterval keeps synced commits grouping on one P: a synced
// store holds the next fsync back by walMinSyncInterval (see options.go for
// the measurement), a relaxed one, whose commits wait for no fsync, does not.
func TestWALMinSyncInterval(t *testing.T) {
	for _, tc := range []struct {
		wo   *pebble.WriteOptions
		want bool
	}{{pebble.Sync, true}, {pebble.NoSync, false}} {
		po := &pebble.Options{}
		applyPebbleOptions(po, &DB{wo: tc.wo})
		got := po.WALMinSyncInterval != nil && po.WALMinSyncInterval() == walMinSyncInterval
		if got != tc.want {
			t.Errorf("sync=%v: WALMinSyncInterval set = %v, want %v", tc.wo.Sync, got, tc.want)
		}
	}
}
