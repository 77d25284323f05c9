package store

import (
	"testing"
	"time"

	"github.com/countersign/countersign/engine/approval"
)

// expiredCall is one call of ApprovalExpired.
type expiredCall struct {
	org          OrgID
	approvalID   string
	userID       string
	stillPending bool // what the store said of the approval when told
}

// TestSweepApprovals: a pending approval past its expiry is marked expired
// by the sweep, with its approval.decided outbox entry, out of the pending
// index, and told of; one not yet expired is untouched; another
// organization's is swept as its own, without the first one's
// subscriptions; one decided before its expiry only loses its entry.
func TestSweepApprovals(t *testing.T) {
	db, clk := openMem(t)
	db.SetEventBodies(testBodies)
	w := newApprovalWorld(t, db, clk)
	_ = must[Webhook](t)(db.CreateWebhook(w.org, Webhook{URL: "https://a", Events: EventApprovalDecided, Format: FormatStandard}, []byte("k"), newTestSealer(t)))
	other, _ := newOrg(t, db, "globex")
	must[User](t)(db.CreateUser(other.ID, User{UserID: "ann"}))
	w2 := *w
	w2.org = other.ID

	var told []expiredCall
	db.SetApprovalExpired(func(org OrgID, approvalID, userID string) {
		var a approval.Approval
		c := must[*call](t)(db.begin(org, nil))
		check(t, readApproval(db, c, approvalID, &a))
		c.end()
		told = append(told, expiredCall{org, approvalID, userID, a.Status == approval.StatusPending})
	})

	old := must[*approval.Approval](t)(w.create("ann"))
	foreign := must[*approval.Approval](t)(w2.create("ann"))
	clk.Advance(old.ExpiresAt.Sub(clk.Now()) / 2)
	young := must[*approval.Approval](t)(w.create("ann"))
	if n := must[int](t)(db.SweepApprovals(0)); n != 0 || len(told) != 0 {
		t.Fatalf("swept %d before any expiry, told %+v", n, told)
	}

	clk.Advance(old.ExpiresAt.Sub(clk.Now()) - time.Nanosecond)
	if n := must[int](t)(db.SweepApprovals(0)); n != 0 {
		t.Fatalf("swept %d a nanosecond before the expiry", n)
	}
	clk.Advance(time.Nanosecond)
	if n := must[int](t)(db.SweepApprovals(1)); n != 1 { // bounded: one per pass
		t.Fatalf("limit 1: swept %d", n)
	}
	if n := must[int](t)(db.SweepApprovals(0)); n != 1 {
		t.Fatalf("rest: swept %d", n)
	}
	if n := must[int](t)(db.SweepApprovals(0)); n != 0 {
		t.Fatalf("again: swept %d", n)
	}

	want := map[string]expiredCall{
		old.ID:     {w.org, old.ID, "ann", false},
		foreign.ID: {other.ID, foreign.ID, "ann", false},
	}
	if len(told) != 2 || told[0] != want[told[0].approvalID] || told[1] != want[told[1].approvalID] {
		t.Fatalf("told %+v, want %+v", told, want)
	}
	for _, x := range []struct {
		w *approvalWorld
		a *approval.Approval
	}{{w, old}, {&w2, foreign}} {
		got := x.w.read(x.a.ID)
		if got.Status != approval.StatusExpired || !got.DecidedAt.Equal(x.a.ExpiresAt) || got.Version != 2 {
			t.Fatalf("swept approval %+v", got)
		}
	}
	if got := w.read(young.ID); got.Status != approval.StatusPending || got.Version != 1 {
		t.Fatalf("young approval %+v", got)
	}
	if n, e := countKind(t, db, kindPending), countKind(t, db, kindApprovalExpiry); n != 1 || e != 1 {
		t.Fatalf("after the sweep: %d pending index records, %d expiry entries; want the young one's", n, e)
	}
	// Only the first organization subscribes: one event, its own.
	due := must[[]OutboxEntry](t)(db.DueDeliveries(clk.Now(), 10))
	if len(due) != 1 || due[0].OrgID != w.org || string(due[0].Body) != "standard approval.decided "+old.ID+" expired" {
		t.Fatalf("outbox %+v", due)
	}

	// Decided before its expiry: the sweep leaves it as it is.
	_ = must[approval.Effect](t)(w.answer(young, approval.DecisionApprove, true))
	clk.Advance(time.Hour)
	if n := must[int](t)(db.SweepApprovals(0)); n != 0 {
		t.Fatalf("swept %d decided approvals", n)
	}
	if got := w.read(young.ID); got.Status != approval.StatusApproved || got.Version != 2 {
		t.Fatalf("decided approval after the sweep %+v", got)
	}
	if e := countKind(t, db, kindApprovalExpiry); e != 0 {
		t.Fatalf("%d expiry entries left", e)
	}
	if st, _ := db.Stats(); st.SweptApprovals != 2 {
		t.Fatalf("Stats.SweptApprovals %d", st.SweptApprovals)
	}
}

// TestSweepActivationCodes: a code past its expiry is deleted by the
// sweep; a used one has no entry left to sweep; a young one stays usable.
func TestSweepActivationCodes(t *testing.T) {
	db, o, clk := annOrg(t)
	expired, _ := must2(t)(db.CreateActivationCode(o.ID, "ann"))
	used, _ := must2(t)(db.CreateActivationCode(o.ID, "ann"))
	_, _, err := db.ActivateDevice([]byte(used), testActivation(1))
	check(t, err)
	clk.Advance(ActivationCodeTTL / 2)
	young, _ := must2(t)(db.CreateActivationCode(o.ID, "ann"))
	if n := must[int](t)(db.SweepActivationCodes(0)); n != 0 {
		t.Fatalf("swept %d codes before any expired", n)
	}
	if e := countKind(t, db, kindCodeExpiry); e != 2 {
		t.Fatalf("%d expiry entries, want the unused codes' 2", e)
	}

	clk.Advance(ActivationCodeTTL / 2)
	if n := must[int](t)(db.SweepActivationCodes(0)); n != 1 {
		t.Fatalf("swept %d codes, want 1", n)
	}
	if n := must[int](t)(db.SweepActivationCodes(0)); n != 0 {
		t.Fatalf("again: swept %d", n)
	}
	if a, e := countKind(t, db, kindActivation), countKind(t, db, kindCodeExpiry); a != 1 || e != 1 {
		t.Fatalf("after the sweep: %d codes, %d expiry entries; want the young one's", a, e)
	}
	_, err = db.LookupActivationCode([]byte(expired))
	wantErr(t, err, ErrNotFound)
	check(t, errOf(db.LookupActivationCode([]byte(young))))
	if st, _ := db.Stats(); st.SweptActivationCodes != 1 {
		t.Fatalf("Stats.SweptActivationCodes %d", st.SweptActivationCodes)
	}
}

// TestSweepExpiryDamage: an undecodable entry, or one whose approval or
// code record is damaged, is dropped and reported as ErrCorrupt, not read
// by every pass; the sweep goes on with the rest.
func TestSweepExpiryDamage(t *testing.T) {
	db, clk := openMem(t)
	w := newApprovalWorld(t, db, clk)
	a := must[*approval.Approval](t)(w.create("ann"))
	bad := must[*approval.Approval](t)(w.create("ann"))
	check(t, db.pdb.Set(appendApprovalKey(nil, w.org, bad.ID), []byte{0xff}, nil))
	check(t, db.pdb.Set([]byte{kindApprovalExpiry, 0, 0}, nil, nil))
	hash := sha256Of("csa_damaged")
	check(t, db.pdb.Set(appendHashKey(nil, kindActivation, &hash), []byte{tagV1}, nil))
	check(t, db.pdb.Set(appendCodeExpiryKey(nil, 1, hash[:]), nil, nil))
	check(t, db.pdb.Set([]byte{kindCodeExpiry, 0}, nil, nil))
	clk.Advance(time.Hour)

	n, err := db.SweepApprovals(0)
	wantErr(t, err, ErrCorrupt)
	if n != 1 || w.read(a.ID).Version != 2 || countKind(t, db, kindApprovalExpiry) != 0 {
		t.Fatalf("swept %d, %d entries left", n, countKind(t, db, kindApprovalExpiry))
	}
	n, err = db.SweepActivationCodes(0)
	wantErr(t, err, ErrCorrupt)
	if n != 0 || countKind(t, db, kindCodeExpiry) != 0 || countKind(t, db, kindActivation) != 0 {
		t.Fatalf("swept %d codes; left %d entries, %d codes", n, countKind(t, db, kindCodeExpiry), countKind(t, db, kindActivation))
	}
	if n, err := db.SweepApprovals(0); n != 0 || err != nil {
		t.Fatalf("second pass: %d, %v", n, err)
	}
}
