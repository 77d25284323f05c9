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
