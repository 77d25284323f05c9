package store

import (
	"testing"
	"time"

	"github.com/countersign/countersign/engine/approval"
)

// openDiskApprovals is an approval world on a Sync store in a temp dir,
// fsyncs included, as the server runs.
func openDiskApprovals(b *testing.B) *approvalWorld {
	b.Helper()
	clk := newClock()
	db, err := Open(Options{Dir: b.TempDir(), Now: clk.Now})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = db.Close() })
	w := newApprovalWorld(b, db, clk)
	return w
}

// BenchmarkDeviceByToken is the authentication of a device call.
func BenchmarkDeviceByToken(b *testing.B) {
	w := openDiskApprovals(b)
	_, token := activate(b, w.db, w.org, "ann", 3)
	check(b, w.db.pdb.Flush())
	tok := []byte(token)
	var d Device
	b.ReportAllocs()
	for b.Loop() {
		if err := w.db.DeviceByToken(tok, &d); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkApprovalRead is the read of an approval by id into a reused
// value (a long poll's).
func BenchmarkApprovalRead(b *testing.B) {
	w := openDiskApprovals(b)
	a, err := w.create("ann")
	check(b, err)
	check(b, w.db.pdb.Flush())
	var dst approval.Approval
	b.ReportAllocs()
	for b.Loop() {
		if err := w.db.Approval(w.org, a.ID, &dst); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCreateAndAnswer is an approval's life on the store: created
// with the user's admission, answered by the device with a real Ed25519
// signature, two synced commits.
func BenchmarkCreateAndAnswer(b *testing.B) {
	w := openDiskApprovals(b)
	b.ReportAllocs()
	for b.Loop() {
		a, err := w.create("ann")
		if err != nil {
			b.Fatal(err)
		}
		if _, err := w.answer(a, approval.DecisionApprove, true); err != nil {
			b.Fatal(err)
		}
		// Ten approvals a ten-minute window: a minute and a bit between
		// them keeps the push-bombing limit from refusing the next.
		w.clk.Advance(time.Minute + time.Second)
	}
}

// BenchmarkUpdateReads is the reads of an answer's compare-and-set, with a
// transition that changes nothing (so nothing is written): UpdateApproval
// reads the approval before it takes its user's stripe and again under it,
// UpdateApprovalOf (a device answering for its user) once, under it.
func BenchmarkUpdateReads(b *testing.B) {
	for _, flushed := range []bool{false, true} {
		w := openDiskApprovals(b)
		a, err := w.create("ann")
		check(b, err)
		where := "memtable"
		if flushed {
			check(b, w.db.pdb.Flush())
			where = "sstable"
		}
		none := func(*approval.Approval, *approval.UserState) (approval.Effect, error) { return approval.Effect{}, nil }
		var dst approval.Approval
		var u approval.UserState
		b.Run("UpdateApproval/"+where, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := w.db.UpdateApproval(w.org, a.ID, &dst, &u, none); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("UpdateApprovalOf/"+where, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := w.db.UpdateApprovalOf(w.org, "ann", a.ID, &dst, &u, none); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
