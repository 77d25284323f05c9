package store

import (
	"errors"
	"testing"
	"time"

	"github.com/countersign/countersign/engine/approval"
)

// lockNow is an UpdateUserState transition that records failures until the
// user is locked under the default settings.
func lockNow(db *DB) func(u *approval.UserState) error {
	return func(u *approval.UserState) error {
		s := approval.DefaultSettings()
		for range s.LockoutFailures {
			approval.RecordFailure(u, &s, db.now())
		}
		return nil
	}
}

// TestUserStateLockSurvivesRestart: a lock is a durable record, read back
// after a restart, and an operator's unlock lifts it.
func TestUserStateLockSurvivesRestart(t *testing.T) {
	d := openDurable(t)
	o, _ := newOrg(t, d.db, "acme")
	must[User](t)(d.db.CreateUser(o.ID, User{UserID: "ann"}))
	var u approval.UserState
	check(t, d.db.UserState(o.ID, "ann", &u))
	if u.Version != 0 || u.Failures != 0 {
		t.Fatalf("fresh state %+v", u)
	}
	check(t, d.db.UpdateUserState(o.ID, "ann", &u, lockNow(d.db)))
	if u.Version != 1 {
		t.Fatalf("version after the first write: %d", u.Version)
	}
	db := d.reopen()
	check(t, db.UserState(o.ID, "ann", &u))
	if _, locked := u.LockedAt(d.clk.Now()); !locked || u.Version != 1 {
		t.Fatalf("after a restart: %+v", u)
	}
	check(t, db.UpdateUserState(o.ID, "ann", &u, func(u *approval.UserState) error {
		approval.Unlock(u)
		return nil
	}))
	check(t, db.UserState(o.ID, "ann", &u))
	if _, locked := u.LockedAt(d.clk.Now()); locked || u.Version != 2 {
		t.Fatalf("after unlock: %+v", u)
	}
}

// TestUpdateUserStateWritesRefusals: a transition's refusal is returned and
// what it changed is still stored (a wrong code counts), while one that
// changes nothing writes nothing.
func TestUpdateUserStateWritesRefusals(t *testing.T) {
	db, o, _ := annOrg(t)
	secret := []byte("12345678901234567890")
	var u approval.UserState
	s := approval.DefaultSettings()
	err := db.UpdateUserState(o.ID, "ann", &u, func(u *approval.UserState) error {
		_, err := approval.CheckTOTP(u, &s, secret, "000000", db.now().Add(-time.Hour))
		return err
	})
	if !errors.Is(err, approval.ErrOTPWrong) {
		t.Fatalf("wrong code: %v", err)
	}
	check(t, db.UserState(o.ID, "ann", &u))
	if u.Failures != 1 || u.Version != 1 {
		t.Fatalf("stored after a wrong code: %+v", u)
	}
	check(t, db.UpdateUserState(o.ID, "ann", &u, func(*approval.UserState) error { return nil }))
	if u.Version != 1 {
		t.Fatalf("an empty transition wrote version %d", u.Version)
	}
}

// TestUserStateTenancy: the state of another organization's user is not
// found, and no transition runs on it.
func TestUserStateTenancy(t *testing.T) {
	db, _ := openMem(t)
	a, _ := newOrg(t, db, "a")
	b, _ := newOrg(t, db, "b")
	must[User](t)(db.CreateUser(a.ID, User{UserID: "ann"}))
	check(t, db.UpdateUserState(a.ID, "ann", new(approval.UserState), lockNow(db)))
	wantErr(t, db.UserState(b.ID, "ann", new(approval.UserState)), ErrNotFound)
	ran := false
	err := db.UpdateUserState(b.ID, "ann", new(approval.UserState), func(*approval.UserState) error { ran = true; return nil })
	wantErr(t, err, ErrNotFound)
	if ran || countKind(t, db, kindUserState) != 1 {
		t.Fatal("another organization's state was touched")
	}
	wantErr(t, db.UserState(a.ID, "", new(approval.UserState)), ErrNotFound)
}
