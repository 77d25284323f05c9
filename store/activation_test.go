package store

import (
	"crypto/rand"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// TestActivationCodeOnce: a code activates one device, once; a second use
// is ErrNotFound, as an unknown code is.
func TestActivationCodeOnce(t *testing.T) {
	d := openDurable(t)
	o, _ := newOrg(t, d.db, "acme")
	must[User](t)(d.db.CreateUser(o.ID, User{UserID: "ann"}))
	code, ac := must2(t)(d.db.CreateActivationCode(o.ID, "ann"))
	if !strings.HasPrefix(code, ActivationCodePrefix) || len(code) != ActivationCodeLen {
		t.Fatalf("code %q", code)
	}
	if ac.ExpiresAt != d.clk.Now().Add(ActivationCodeTTL).UnixMilli() || ac.UserID != "ann" || ac.OrgID != o.ID {
		t.Fatalf("code record %+v", ac)
	}
	if rawContains(t, d.db, []byte(code)) {
		t.Fatal("the activation code is stored in the clear")
	}
	db := d.reopen() // the code is durable
	if got := must[ActivationCode](t)(db.LookupActivationCode([]byte(code))); got != ac {
		t.Fatalf("lookup %+v, want %+v", got, ac)
	}
	dev, _, err := db.ActivateDevice([]byte(code), testActivation(1))
	check(t, err)
	if dev.UserID != "ann" || dev.OrgID != o.ID {
		t.Fatalf("device %+v", dev)
	}
	_, _, err = db.ActivateDevice([]byte(code), testActivation(3))
	wantErr(t, err, ErrNotFound)
	_, err = db.LookupActivationCode([]byte(code))
	wantErr(t, err, ErrNotFound)
	if n := countKind(t, db, kindActivation); n != 0 {
		t.Fatalf("%d activation records left after use", n)
	}
	for _, bad := range []string{"", "csa_", code[:len(code)-1] + "x", strings.ToUpper(code)} {
		_, _, err = db.ActivateDevice([]byte(bad), testActivation(1))
		wantErr(t, err, ErrNotFound)
	}
}

// TestActivationCodeExpires: ten minutes after it was issued a code is
// refused as expired, removed, and then unknown.
func TestActivationCodeExpires(t *testing.T) {
	db, o, clk := annOrg(t)
	code, _ := must2(t)(db.CreateActivationCode(o.ID, "ann"))
	clk.Advance(ActivationCodeTTL - time.Millisecond)
	check(t, errOf(db.LookupActivationCode([]byte(code))))
	clk.Advance(time.Millisecond)
	_, err := db.LookupActivationCode([]byte(code))
	wantErr(t, err, ErrCodeExpired)
	_, _, err = db.ActivateDevice([]byte(code), testActivation(1))
	wantErr(t, err, ErrCodeExpired)
	_, _, err = db.ActivateDevice([]byte(code), testActivation(1))
	wantErr(t, err, ErrNotFound)
	if countKind(t, db, kindDevice) != 0 {
		t.Fatal("an expired code registered a device")
	}
}

func errOf[T any](_ T, err error) error { return err }

// TestActivationCodeTenancy: a code is issued only for a user of the
// operator's own organization, and the device it activates belongs there.
func TestActivationCodeTenancy(t *testing.T) {
	db, _ := openMem(t)
	a, _ := newOrg(t, db, "a")
	b, _ := newOrg(t, db, "b")
	must[User](t)(db.CreateUser(a.ID, User{UserID: "ann"}))
	_, _, err := db.CreateActivationCode(b.ID, "ann")
	wantErr(t, err, ErrNotFound)
	_, _, err = db.CreateActivationCode(OrgID{1, 2, 3}, "ann")
	wantErr(t, err, ErrNotFound)
	code, _ := must2(t)(db.CreateActivationCode(a.ID, "ann"))
	dev, _, err := db.ActivateDevice([]byte(code), testActivation(1))
	check(t, err)
	_, err = db.Device(b.ID, dev.ID)
	wantErr(t, err, ErrNotFound)
}

// TestActivationAfterUserDeleted: a code of a user deleted since is
// refused and removed.
func TestActivationAfterUserDeleted(t *testing.T) {
	db, o, _ := annOrg(t)
	code, _ := must2(t)(db.CreateActivationCode(o.ID, "ann"))
	check(t, db.DeleteUser(o.ID, "ann"))
	_, _, err := db.ActivateDevice([]byte(code), testActivation(1))
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("activation for a deleted user: %v", err)
	}
	if countKind(t, db, kindActivation) != 0 || countKind(t, db, kindDevice) != 0 {
		t.Fatal("records left behind")
	}
}

// switchRand is crypto/rand until it is told to fail.
type switchRand struct{ fail atomic.Bool }

func (r *switchRand) Read(p []byte) (int, error) {
	if r.fail.Load() {
		return 0, errors.New("entropy exhausted")
	}
	return rand.Read(p)
}

// TestActivationRandomness: device ids and tokens come from Options.Rand;
// when it fails, activation fails with ErrRandom and the code stays
// usable.
func TestActivationRandomness(t *testing.T) {
	rnd := new(switchRand)
	db, err := Open(Options{Dir: "db", FS: vfs.NewMem(), Rand: rnd})
	check(t, err)
	t.Cleanup(func() { _ = db.Close() })
	o, _ := newOrg(t, db, "acme")
	must[User](t)(db.CreateUser(o.ID, User{UserID: "ann"}))
	code, _ := must2(t)(db.CreateActivationCode(o.ID, "ann"))
	rnd.fail.Store(true)
	_, _, err = db.ActivateDevice([]byte(code), testActivation(1))
	wantErr(t, err, ErrRandom)
	_, _, err = db.CreateActivationCode(o.ID, "ann")
	wantErr(t, err, ErrRandom)
	rnd.fail.Store(false)
	_, _, err = db.ActivateDevice([]byte(code), testActivation(1))
	check(t, err)
}
