//go:build !race

package store

import (
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/countersign/countersign/engine/approval"
)

// TestApprovalAllocations pins what the approval families' hot reads
// allocate, from sstables, as a long-running server finds them.
// DeviceByToken authenticates every device call and allocates nothing once
// dst has grown: both reads go through iterators, which Pebble pools, and
// the strings are views of dst's buffer. Approval (the long poll's and the
// answer's read) allocates exactly once: approval.DecodeApproval copies the
// record into one string that all of the approval's strings slice, so the
// approval owns its text (engine/approval codec.go).
func TestApprovalAllocations(t *testing.T) {
	clk := newClock()
	db, err := Open(Options{Dir: "db", FS: vfs.NewMem(), Now: clk.Now})
	check(t, err)
	t.Cleanup(func() { _ = db.Close() })
	w := newApprovalWorld(t, db, clk)
	_, token := activate(t, db, w.org, "ann", 3)
	a, err := w.create("ann")
	check(t, err)
	check(t, db.pdb.Flush())

	tok := []byte(token)
	var dev Device
	var dst approval.Approval
	for _, c := range []struct {
		name string
		max  float64
		fn   func()
	}{
		{"DeviceByToken", 0, func() {
			if err := db.DeviceByToken(tok, &dev); err != nil {
				t.Fatal(err)
			}
		}},
		{"Approval", 1, func() {
			if err := db.Approval(w.org, a.ID, &dst); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		c.fn() // grow the buffers
		if got := testing.AllocsPerRun(100, c.fn); got > c.max {
			t.Errorf("%s: %v allocations, want at most %v", c.name, got, c.max)
		}
	}
}
