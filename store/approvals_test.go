package store

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/countersign/countersign/engine/approval"
	"github.com/countersign/countersign/engine/rules"
)

// approvalWorld is an organization with user "ann", her registered device
// and the default approval settings.
type approvalWorld struct {
	t        testing.TB
	db       *DB
	clk      *clock
	org      OrgID
	dev      Device
	key      ed25519.PrivateKey
	settings approval.Settings
}

func newApprovalWorld(t testing.TB, db *DB, clk *clock) *approvalWorld {
	o, _ := newOrg(t, db, "acme")
	must[User](t)(db.CreateUser(o.ID, User{UserID: "ann"}))
	dev, _ := activate(t, db, o.ID, "ann", 1)
	return &approvalWorld{t: t, db: db, clk: clk, org: o.ID, dev: dev, key: deviceKey(1), settings: approval.DefaultSettings()}
}

// create makes a push approval for userID through approval.New and
// approval.Admit, as the approval surfaces will.
func (w *approvalWorld) create(userID string) (*approval.Approval, error) {
	w.t.Helper()
	id := must[string](w.t)(w.db.NewApprovalID())
	req := approval.Request{ID: id, UserID: userID, Message: "Pay Acme?", Method: approval.MethodPush,
		Values: []approval.Value{{Key: "amount", Value: "35.00"}, {Key: "payee", Value: "NL01"}}}
	a := new(approval.Approval)
	check(w.t, approval.New(a, &req, &w.settings, w.clk.Now(), rand.Reader))
	err := w.db.CreateApproval(w.org, a, func(u *approval.UserState, adm *approval.Admission) error {
		adm.Method = a.Method
		_, err := approval.Admit(u, &w.settings, adm, w.clk.Now())
		return err
	})
	return a, err
}

// answer is the device's signed answer to a, applied with approval.Answer
// through UpdateApprovalOf, as the device surface does. sign false sends a
// signature that does not verify.
func (w *approvalWorld) answer(a *approval.Approval, d approval.Decision, sign bool) (approval.Effect, error) {
	ans := approval.DeviceAnswer{Decision: d, Biometric: rules.BiometricPass,
		Timestamp: w.clk.Now().UTC().Format(time.RFC3339), Location: answerFix}
	digest := approval.ValuesDigest(a.Values)
	msg := approval.AppendSignedBytes(nil, a.ID, &a.Challenge, ans.Decision, ans.Biometric, ans.Timestamp, &digest)
	if !sign {
		msg = append(msg, '!')
	}
	ans.Signature = base64.RawURLEncoding.EncodeToString(ed25519.Sign(w.key, msg))
	var res rules.Result
	rules.Evaluate(nil, &rules.Input{UserID: []byte(a.UserID), Biometric: ans.Biometric}, w.clk.Now(), &res)
	dev := w.dev.Approval()
	var stored approval.Approval
	var u approval.UserState
	return w.db.UpdateApprovalOf(w.org, dev.UserID, a.ID, &stored, &u, func(a *approval.Approval, u *approval.UserState) (approval.Effect, error) {
		return approval.Answer(a, u, &w.settings, &dev, &ans, &res, w.clk.Now())
	})
}

// answerFix is where the world's device answers from.
var answerFix = rules.Location{Present: true, Lat: 52.37, Lon: 4.89, AccuracyM: 12}

func (w *approvalWorld) read(id string) *approval.Approval {
	w.t.Helper()
	var a approval.Approval
	check(w.t, w.db.Approval(w.org, id, &a))
	return &a
}

func (w *approvalWorld) state(userID string) approval.UserState {
	w.t.Helper()
	var u approval.UserState
	check(w.t, w.db.UserState(w.org, userID, &u))
	return u
}

// TestApprovalRoundTrip: a created approval reads back as created (with
// Version 1), is pending for its user and in its user's audit list, and is
// all still there after a restart, with the admission counted in the
// user's state.
func TestApprovalRoundTrip(t *testing.T) {
	d := openDurable(t)
	w := newApprovalWorld(t, d.db, d.clk)
	a, err := w.create("ann")
	check(t, err)
	if a.Version != 1 {
		t.Fatalf("created with Version %d", a.Version)
	}
	w.db = d.reopen()
	if got := w.read(a.ID); !bytes.Equal(approval.AppendApproval(nil, got), approval.AppendApproval(nil, a)) {
		t.Fatalf("read back\n%+v\nwant\n%+v", got, a)
	}
	pending := must[[]approval.Approval](t)(w.db.PendingApprovals(w.org, "ann", nil))
	if len(pending) != 1 || pending[0].ID != a.ID {
		t.Fatalf("pending: %+v", pending)
	}
	list, next, err := w.db.ApprovalsOfUser(w.org, "ann", 10, "")
	check(t, err)
	if len(list) != 1 || list[0].ID != a.ID || next != "" {
		t.Fatalf("audit list %+v, next %q", list, next)
	}
	if u := w.state("ann"); len(u.Recent) != 1 || u.Version != 1 {
		t.Fatalf("user state after one admission: %+v", u)
	}
	_, err = w.create("nobody")
	wantErr(t, err, ErrNotFound)
	dup := *a
	dup.Version = 0
	wantErr(t, w.db.CreateApproval(w.org, &dup, func(*approval.UserState, *approval.Admission) error { return nil }), ErrExists)
	wantErr(t, w.db.CreateApproval(w.org, a, func(*approval.UserState, *approval.Admission) error { return nil }), ErrNotNew)
}

// TestApprovalAdmission: the pending count Admit sees is the user's
// unexpired pending approvals; a refusal writes nothing; approvals past
// their expiry stop counting and are marked expired.
func TestApprovalAdmission(t *testing.T) {
	db, clk := openMem(t)
	w := newApprovalWorld(t, db, clk)
	var first *approval.Approval
	for i := range w.settings.MaxPending {
		a, err := w.create("ann")
		check(t, err)
		if i == 0 {
			first = a
		}
		clk.Advance(time.Second)
	}
	_, err := w.create("ann")
	wantErr(t, err, approval.ErrTooManyPending)
	if n := countKind(t, db, kindApproval); n != w.settings.MaxPending {
		t.Fatalf("%d approvals stored after a refusal", n)
	}
	clk.Advance(time.Duration(w.settings.ExpirySeconds) * time.Second)
	if got := w.read(first.ID); got.Status != approval.StatusExpired || !got.DecidedAt.Equal(got.ExpiresAt) {
		t.Fatalf("past expiry reads %s decided %v", got.Status, got.DecidedAt)
	}
	if p := must[[]approval.Approval](t)(db.PendingApprovals(w.org, "ann", nil)); len(p) != 0 {
		t.Fatalf("%d pending past expiry", len(p))
	}
	_, err = w.create("ann")
	check(t, err)
	if n := countKind(t, db, kindPending); n != 1 {
		t.Fatalf("%d pending index records, want the new one only", n)
	}
	// The expired ones were marked so in the store, not only on read.
	var raw approval.Approval
	c, _ := db.begin(w.org, nil)
	err = readApproval(db, c, first.ID, &raw)
	c.end()
	check(t, err)
	if raw.Status != approval.StatusExpired || raw.Version != 2 {
		t.Fatalf("stored %s version %d", raw.Status, raw.Version)
	}
}

// openSynced opens a Sync store on disk: racing tests run there, where
// every commit waits for an fsync, so calls that were not serialised have
// the time to interleave.
func openSynced(t *testing.T) (*DB, *clock) {
	clk := newClock()
	db, err := Open(Options{Dir: t.TempDir(), Now: clk.Now})
	check(t, err)
	t.Cleanup(func() { _ = db.Close() })
	return db, clk
}

// TestConcurrentAnswers: many answers to one approval race; exactly one
// applies, the others find it decided.
func TestConcurrentAnswers(t *testing.T) {
	db, clk := openSynced(t)
	w := newApprovalWorld(t, db, clk)
	a, err := w.create("ann")
	check(t, err)
	errs := race(8, func(i int) error {
		d := approval.DecisionApprove
		if i%2 == 1 {
			d = approval.DecisionDeny
		}
		_, err := w.answer(a, d, true)
		return err
	})
	applied := 0
	for _, err := range errs {
		switch {
		case err == nil:
			applied++
		case !errors.Is(err, approval.ErrNotPending):
			t.Errorf("answer: %v", err)
		}
	}
	got := w.read(a.ID)
	if applied != 1 || got.Version != 2 || !got.VerifyReceipt(w.key.Public().(ed25519.PublicKey)) {
		t.Fatalf("%d answers applied; stored %s version %d", applied, got.Status, got.Version)
	}
	if p := must[[]approval.Approval](t)(db.PendingApprovals(w.org, "ann", nil)); len(p) != 0 {
		t.Fatalf("decided approval still pending: %d", len(p))
	}
}

// TestDenialCancelsOthers: a denial cancels the user's other pending
// approvals in its batch and holds the user to the OTP.
func TestDenialCancelsOthers(t *testing.T) {
	d := openDurable(t)
	w := newApprovalWorld(t, d.db, d.clk)
	other, err := w.create("ann")
	check(t, err)
	d.clk.Advance(time.Second)
	denied, err := w.create("ann")
	check(t, err)
	eff, err := w.answer(denied, approval.DecisionDeny, true)
	if err != nil || !eff.CancelOtherPending || eff.Status != approval.StatusDenied {
		t.Fatalf("deny: %+v %v", eff, err)
	}
	w.db = d.reopen()
	if got := w.read(other.ID); got.Status != approval.StatusCancelled || got.Version != 2 {
		t.Fatalf("other approval %s version %d", got.Status, got.Version)
	}
	if got := w.read(denied.ID); got.Status != approval.StatusDenied {
		t.Fatalf("denied approval %s", got.Status)
	}
	if u := w.state("ann"); !u.TokenRequired {
		t.Fatal("token not required after a denial")
	}
	if n := countKind(t, w.db, kindPending); n != 0 {
		t.Fatalf("%d pending index records after the denial", n)
	}
}

// TestRefusedAnswersCountAndLock: a badly signed answer is refused, leaves
// the approval pending and is counted; the fifth locks the user, and the
// lock survives a restart.
func TestRefusedAnswersCountAndLock(t *testing.T) {
	d := openDurable(t)
	w := newApprovalWorld(t, d.db, d.clk)
	a, err := w.create("ann")
	check(t, err)
	for i := 1; i <= w.settings.LockoutFailures; i++ {
		eff, err := w.answer(a, approval.DecisionApprove, false)
		wantErr(t, err, approval.ErrSignature)
		if !eff.Failure {
			t.Fatalf("failure %d not counted", i)
		}
	}
	w.db = d.reopen()
	u := w.state("ann")
	if until, locked := u.LockedAt(d.clk.Now()); !locked || !until.Equal(d.clk.Now().Add(time.Duration(w.settings.LockoutMinutes)*time.Minute)) {
		t.Fatalf("after %d failures and a restart: %+v", w.settings.LockoutFailures, u)
	}
	if got := w.read(a.ID); got.Status != approval.StatusPending || got.Version != 1 {
		t.Fatalf("refused answers changed the approval: %s version %d", got.Status, got.Version)
	}
	_, err = w.answer(a, approval.DecisionApprove, true)
	wantErr(t, err, approval.ErrLocked)
}

// TestUpdateApprovalNoChange: a transition that changes nothing writes
// nothing; one that changes the id is refused.
func TestUpdateApprovalNoChange(t *testing.T) {
	db, clk := openMem(t)
	w := newApprovalWorld(t, db, clk)
	a, err := w.create("ann")
	check(t, err)
	var got approval.Approval
	var u approval.UserState
	_, err = db.UpdateApproval(w.org, a.ID, &got, &u, func(*approval.Approval, *approval.UserState) (approval.Effect, error) {
		return approval.Effect{}, nil
	})
	check(t, err)
	if got.Version != 1 || u.Version != 1 {
		t.Fatalf("versions %d %d after an empty transition", got.Version, u.Version)
	}
	_, err = db.UpdateApproval(w.org, a.ID, &got, &u, func(a *approval.Approval, _ *approval.UserState) (approval.Effect, error) {
		a.ID = "apr_other"
		return approval.Effect{}, nil
	})
	wantErr(t, err, ErrIdentity)
	if w.read(a.ID).Version != 1 {
		t.Fatal("a refused transition was written")
	}
}

// TestUpdateApprovalOf: the update of an approval its caller says is its
// user's applies as UpdateApproval's does; another user's approval, in the
// organization or another, is ErrNotFound exactly as a missing one, the
// transition is not called and nothing of the approval is left in dst.
func TestUpdateApprovalOf(t *testing.T) {
	db, clk := openMem(t)
	w := newApprovalWorld(t, db, clk)
	must[User](t)(db.CreateUser(w.org, User{UserID: "bob"}))
	bobs, err := w.create("bob")
	check(t, err)
	other, _ := newOrg(t, db, "other")
	must[User](t)(db.CreateUser(other.ID, User{UserID: "ann"}))
	var got approval.Approval
	var u approval.UserState
	never := func(a *approval.Approval, _ *approval.UserState) (approval.Effect, error) {
		t.Fatalf("the transition ran on %s of %s", a.ID, a.UserID)
		return approval.Effect{}, nil
	}
	for _, c := range []struct {
		org    OrgID
		userID string
		id     string
	}{
		{w.org, "ann", bobs.ID},
		{other.ID, "ann", bobs.ID},
		{other.ID, "bob", bobs.ID},
		{w.org, "ann", "apr_doesnotexist"},
		{w.org, "", bobs.ID},
	} {
		_, err := db.UpdateApprovalOf(c.org, c.userID, c.id, &got, &u, never)
		wantErr(t, err, ErrNotFound)
		if got.ID != "" || got.UserID != "" {
			t.Fatalf("%s's update of %s left %+v", c.userID, c.id, got)
		}
	}
	if a := w.read(bobs.ID); a.Version != 1 || a.Status != approval.StatusPending {
		t.Fatalf("bob's approval after the refused updates: %s version %d", a.Status, a.Version)
	}

	anns, err := w.create("ann")
	check(t, err)
	eff, err := w.answer(anns, approval.DecisionApprove, true)
	check(t, err)
	if a := w.read(anns.ID); eff.Status != approval.StatusApproved || a.Status != approval.StatusApproved || a.Version != 2 {
		t.Fatalf("ann's answer: effect %s, stored %s version %d", eff.Status, a.Status, a.Version)
	}
}

// TestCompareAndSet: the write of an update is refused when the stored
// version is not the one read.
func TestCompareAndSet(t *testing.T) {
	db, clk := openMem(t)
	w := newApprovalWorld(t, db, clk)
	a, err := w.create("ann")
	check(t, err)
	c, err := db.begin(w.org, nil)
	check(t, err)
	defer c.end()
	key := appendApprovalKey(nil, c.org, a.ID)
	check(t, db.checkVersion(key, approvalVersionAt, 1))
	wantErr(t, db.checkVersion(key, approvalVersionAt, 0), ErrConflict)
	state := appendUserStateKey(nil, c.org, "ann")
	check(t, db.checkVersion(state, userStateVersionAt, 1))
	wantErr(t, db.checkVersion(state, userStateVersionAt, 2), ErrConflict)
	absent := appendUserStateKey(nil, c.org, "bob")
	check(t, db.checkVersion(absent, userStateVersionAt, 0))
	wantErr(t, db.checkVersion(absent, userStateVersionAt, 1), ErrConflict)
}

// TestApprovalTenancy: another organization reads, updates and lists
// nothing of an approval that is not its own.
func TestApprovalTenancy(t *testing.T) {
	db, clk := openMem(t)
	w := newApprovalWorld(t, db, clk)
	a, err := w.create("ann")
	check(t, err)
	b, _ := newOrg(t, db, "b")
	must[User](t)(db.CreateUser(b.ID, User{UserID: "ann"}))
	wantErr(t, db.Approval(b.ID, a.ID, new(approval.Approval)), ErrNotFound)
	called := false
	_, err = db.UpdateApproval(b.ID, a.ID, new(approval.Approval), new(approval.UserState),
		func(*approval.Approval, *approval.UserState) (approval.Effect, error) {
			called = true
			return approval.Effect{}, nil
		})
	wantErr(t, err, ErrNotFound)
	if called {
		t.Fatal("another organization's transition ran")
	}
	if p := must[[]approval.Approval](t)(db.PendingApprovals(b.ID, "ann", nil)); len(p) != 0 {
		t.Fatalf("b sees %d pending", len(p))
	}
	if l, _, err := db.ApprovalsOfUser(b.ID, "ann", 0, ""); err != nil || len(l) != 0 {
		t.Fatalf("b lists %d approvals, %v", len(l), err)
	}
	wantErr(t, db.Approval(OrgID{1, 2, 3}, a.ID, new(approval.Approval)), ErrNotFound)
}

// TestApprovalsOfUserPaged: the audit list is newest first, paged.
func TestApprovalsOfUserPaged(t *testing.T) {
	db, clk := openMem(t)
	w := newApprovalWorld(t, db, clk)
	w.settings.MaxPending, w.settings.RateLimit = 10, 10
	var ids []string
	for range 5 {
		a, err := w.create("ann")
		check(t, err)
		ids = append([]string{a.ID}, ids...)
		clk.Advance(time.Millisecond)
	}
	var got []string
	cursor := ""
	for {
		page, next, err := db.ApprovalsOfUser(w.org, "ann", 2, cursor)
		check(t, err)
		for _, a := range page {
			got = append(got, a.ID)
		}
		if next == "" {
			break
		}
		cursor = next
	}
	if !reflect.DeepEqual(got, ids) {
		t.Fatalf("audit order %v, want %v", got, ids)
	}
}

// TestPendingApprovalsReuse: the long poll's read fills the caller's
// slice, oldest first.
func TestPendingApprovalsReuse(t *testing.T) {
	db, clk := openMem(t)
	w := newApprovalWorld(t, db, clk)
	first, err := w.create("ann")
	check(t, err)
	clk.Advance(time.Millisecond)
	second, err := w.create("ann")
	check(t, err)
	buf := make([]approval.Approval, 0, 4)
	p := must[[]approval.Approval](t)(db.PendingApprovals(w.org, "ann", buf))
	if len(p) != 2 || p[0].ID != first.ID || p[1].ID != second.ID || &p[0] != &buf[:1][0] {
		t.Fatalf("pending %v", p)
	}
}

// TestConcurrentAdmission: approvals requested at once for one user are
// admitted up to maxPending, no more: the count and the write are under
// the user's stripe.
func TestConcurrentAdmission(t *testing.T) {
	db, clk := openSynced(t)
	w := newApprovalWorld(t, db, clk)
	errs := race(8, func(int) error {
		_, err := w.create("ann")
		return err
	})
	admitted := 0
	for _, err := range errs {
		switch {
		case err == nil:
			admitted++
		case !errors.Is(err, approval.ErrTooManyPending):
			t.Errorf("create: %v", err)
		}
	}
	if admitted != w.settings.MaxPending || countKind(t, db, kindPending) != w.settings.MaxPending {
		t.Fatalf("%d admitted, %d pending records; want %d", admitted, countKind(t, db, kindPending), w.settings.MaxPending)
	}
	if u := w.state("ann"); len(u.Recent) != admitted {
		t.Fatalf("the window counts %d, want %d", len(u.Recent), admitted)
	}
}

// TestLateAnswer: an answer after the expiry is refused as late, counted
// as a failure, and the approval is stored expired and leaves the pending
// index, all in one write.
func TestLateAnswer(t *testing.T) {
	db, clk := openMem(t)
	w := newApprovalWorld(t, db, clk)
	a, err := w.create("ann")
	check(t, err)
	clk.Advance(time.Duration(w.settings.ExpirySeconds) * time.Second)
	eff, err := w.answer(a, approval.DecisionApprove, true)
	wantErr(t, err, approval.ErrLate)
	if !eff.Failure {
		t.Fatal("a late answer is a failure")
	}
	var raw approval.Approval
	c, _ := db.begin(w.org, nil)
	err = readApproval(db, c, a.ID, &raw)
	c.end()
	check(t, err)
	if raw.Status != approval.StatusExpired || raw.Version != 2 || countKind(t, db, kindPending) != 0 {
		t.Fatalf("stored %s version %d, %d pending", raw.Status, raw.Version, countKind(t, db, kindPending))
	}
	if u := w.state("ann"); u.Failures != 1 {
		t.Fatalf("%d failures", u.Failures)
	}
}

// TestApprovalLocationAcrossVersions: an approval stored before the
// device's location was kept (record version 1) reads back without one and
// is answered as any other; the answer's location is stored with it and
// read back after a restart.
func TestApprovalLocationAcrossVersions(t *testing.T) {
	d := openDurable(t)
	w := newApprovalWorld(t, d.db, d.clk)
	a, err := w.create("ann")
	check(t, err)
	old := approval.AppendApproval(nil, a)
	old[0] = 1
	check(t, d.db.pdb.Set(appendApprovalKey(nil, w.org, a.ID), old, nil))
	got := w.read(a.ID)
	if got.ID != a.ID || got.Location.Present {
		t.Fatalf("version 1 read back as %+v", got)
	}
	if eff, err := w.answer(got, approval.DecisionApprove, true); err != nil || eff.Status != approval.StatusApproved {
		t.Fatalf("answer: %+v %v", eff, err)
	}
	w.db = d.reopen()
	if got = w.read(a.ID); got.Status != approval.StatusApproved || got.Location != answerFix {
		t.Fatalf("after the answer and a restart: %s at %+v, want approved at %+v", got.Status, got.Location, answerFix)
	}
}

// TestApprovalCorrupt: a damaged approval or user state record is
// ErrCorrupt to every reader, never a panic, and no transition runs on it.
func TestApprovalCorrupt(t *testing.T) {
	db, clk := openMem(t)
	w := newApprovalWorld(t, db, clk)
	a, err := w.create("ann")
	check(t, err)
	moved := approval.AppendApproval(nil, a)
	b, _ := w.create("ann")
	key := appendApprovalKey(nil, w.org, b.ID)
	check(t, db.pdb.Set(key, moved, nil)) // a's record under b's id
	wantErr(t, db.Approval(w.org, b.ID, new(approval.Approval)), ErrCorrupt)
	check(t, db.pdb.Set(key, moved[:len(moved)-3], nil))
	wantErr(t, db.Approval(w.org, b.ID, new(approval.Approval)), ErrCorrupt)
	_, err = db.PendingApprovals(w.org, "ann", nil)
	wantErr(t, err, ErrCorrupt)
	check(t, db.pdb.Set(appendUserStateKey(nil, w.org, "ann"), []byte{1, 0xff}, nil))
	wantErr(t, db.UserState(w.org, "ann", new(approval.UserState)), ErrCorrupt)
	ran := false
	_, err = db.UpdateApproval(w.org, a.ID, new(approval.Approval), new(approval.UserState),
		func(*approval.Approval, *approval.UserState) (approval.Effect, error) {
			ran = true
			return approval.Effect{}, nil
		})
	wantErr(t, err, ErrCorrupt)
	if ran {
		t.Fatal("a transition ran on a corrupt user state")
	}
}
