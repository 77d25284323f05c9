package store

import (
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/countersign/countersign/engine/approval"
)

// annOrg is a store with an organization whose one user is "ann".
func annOrg(t testing.TB) (*DB, Org, *clock) {
	db, clk := openMem(t)
	o, _ := newOrg(t, db, "acme")
	must[User](t)(db.CreateUser(o.ID, User{UserID: "ann"}))
	return db, o, clk
}

// race runs fn(0..n-1) at once, released together once all have started,
// and returns their errors.
func race(n int, fn func(i int) error) []error {
	var wg, ready sync.WaitGroup
	start := make(chan struct{})
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		ready.Add(1)
		go func() {
			defer wg.Done()
			ready.Done()
			<-start
			errs[i] = fn(i)
		}()
	}
	ready.Wait()
	close(start)
	wg.Wait()
	return errs
}

func must2(t testing.TB) func(string, ActivationCode, error) (string, ActivationCode) {
	return func(code string, ac ActivationCode, err error) (string, ActivationCode) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return code, ac
	}
}

// deviceKey is a real Ed25519 key, one per seed byte.
func deviceKey(seed byte) ed25519.PrivateKey {
	s := make([]byte, ed25519.SeedSize)
	s[0] = seed
	return ed25519.NewKeyFromSeed(s)
}

func testActivation(seed byte) *DeviceActivation {
	return &DeviceActivation{
		PublicKey: deviceKey(seed).Public().(ed25519.PublicKey), Platform: "ios",
		AppVersion: "2.1.0", Model: "iPhone15,2", PushToken: "apns-token", Jailbroken: seed%2 == 0,
	}
}

// activate registers a device for the user and returns it with its token.
func activate(t testing.TB, db *DB, org OrgID, userID string, seed byte) (Device, string) {
	t.Helper()
	code, _ := must2(t)(db.CreateActivationCode(org, userID))
	d, token, err := db.ActivateDevice([]byte(code), testActivation(seed))
	if err != nil {
		t.Fatal(err)
	}
	return d, token
}

// TestDeviceRoundTrip: an activated device is found by token and id,
// listed under its user, counted on the user, and all of it survives a
// restart; its token is stored only as SHA-256.
func TestDeviceRoundTrip(t *testing.T) {
	d := openDurable(t)
	o, _ := newOrg(t, d.db, "acme")
	must[User](t)(d.db.CreateUser(o.ID, User{UserID: "ann"}))
	dev, token := activate(t, d.db, o.ID, "ann", 1)
	if !strings.HasPrefix(token, DeviceTokenPrefix) || len(token) != DeviceTokenLen || !strings.HasPrefix(dev.ID, DeviceIDPrefix) {
		t.Fatalf("token %q, id %q", token, dev.ID)
	}
	if dev.TokenHash != sha256.Sum256([]byte(token)) || dev.UserID != "ann" || dev.OrgID != o.ID || dev.Platform != "ios" {
		t.Fatalf("activated %+v", dev)
	}
	if rawContains(t, d.db, []byte(token)) {
		t.Fatal("the device token is stored in the clear")
	}
	db := d.reopen()
	var got Device
	check(t, db.DeviceByToken([]byte(token), &got))
	byID := must[Device](t)(db.Device(o.ID, dev.ID))
	for name, g := range map[string]Device{"token": got, "id": byID} {
		g.buf, dev.buf = nil, nil
		if !reflect.DeepEqual(g, dev) {
			t.Errorf("by %s: %+v, want %+v", name, g, dev)
		}
	}
	pub := testActivation(1).PublicKey
	if ad := got.Approval(); ad.ID != dev.ID || ad.UserID != "ann" || !ed25519.PublicKey(pub).Equal(ad.PublicKey) {
		t.Errorf("approval device %+v", ad)
	}
	second, _ := activate(t, db, o.ID, "ann", 3)
	list := must[[]Device](t)(db.DevicesOfUser(o.ID, "ann"))
	if len(list) != 2 || (list[0].ID != dev.ID && list[1].ID != dev.ID) || (list[0].ID != second.ID && list[1].ID != second.ID) {
		t.Fatalf("devices of ann: %+v", list)
	}
	if u := must[User](t)(db.User(o.ID, "ann")); u.Devices != 2 {
		t.Fatalf("ann has %d devices, want 2", u.Devices)
	}
}

// TestDeviceByTokenRefusals: malformed, unknown and near-miss tokens are
// all ErrNotFound.
func TestDeviceByTokenRefusals(t *testing.T) {
	db, o, _ := annOrg(t)
	_, token := activate(t, db, o.ID, "ann", 1)
	flipped := []byte(token)
	flipped[len(flipped)-1] ^= 1
	for _, bad := range [][]byte{nil, []byte("csd_"), flipped, []byte(token + "x"), []byte("csk_" + token[4:])} {
		wantErr(t, db.DeviceByToken(bad, new(Device)), ErrNotFound)
	}
}

// TestRevokeDevice: a revoked device's token stops resolving, its record
// remains with RevokedAt, and the user's count drops once.
func TestRevokeDevice(t *testing.T) {
	d := openDurable(t)
	o, _ := newOrg(t, d.db, "acme")
	must[User](t)(d.db.CreateUser(o.ID, User{UserID: "ann"}))
	dev, token := activate(t, d.db, o.ID, "ann", 1)
	d.clk.Advance(1000)
	check(t, d.db.RevokeDevice(o.ID, dev.ID))
	check(t, d.db.RevokeDevice(o.ID, dev.ID)) // again: nothing changes
	db := d.reopen()
	wantErr(t, db.DeviceByToken([]byte(token), new(Device)), ErrNotFound)
	got := must[Device](t)(db.Device(o.ID, dev.ID))
	if got.RevokedAt != d.clk.Now().UnixMilli() {
		t.Fatalf("revokedAt %d", got.RevokedAt)
	}
	if u := must[User](t)(db.User(o.ID, "ann")); u.Devices != 0 {
		t.Fatalf("ann has %d devices after the revocation", u.Devices)
	}
	wantErr(t, db.RevokeDevice(o.ID, "dev_nosuch"), ErrNotFound)
}

// TestDeviceTenancy: another organization's devices answer as missing ones,
// and cannot be revoked or listed from it.
func TestDeviceTenancy(t *testing.T) {
	db, _ := openMem(t)
	a, _ := newOrg(t, db, "a")
	b, _ := newOrg(t, db, "b")
	for _, o := range []Org{a, b} {
		must[User](t)(db.CreateUser(o.ID, User{UserID: "ann"}))
	}
	dev, token := activate(t, db, a.ID, "ann", 1)
	_, err := db.Device(b.ID, dev.ID)
	wantErr(t, err, ErrNotFound)
	wantErr(t, db.RevokeDevice(b.ID, dev.ID), ErrNotFound)
	if list := must[[]Device](t)(db.DevicesOfUser(b.ID, "ann")); len(list) != 0 {
		t.Fatalf("b sees %d devices of its ann", len(list))
	}
	var got Device
	check(t, db.DeviceByToken([]byte(token), &got))
	if got.OrgID != a.ID {
		t.Fatalf("token resolves to org %s, want %s", got.OrgID, a.ID)
	}
	if u := must[User](t)(db.User(b.ID, "ann")); u.Devices != 0 {
		t.Fatalf("b's ann counts %d devices", u.Devices)
	}
}

// TestActivateRefusesKeys: no device is registered under a key that is not
// a usable Ed25519 public key, and the code stays usable.
func TestActivateRefusesKeys(t *testing.T) {
	db, o, _ := annOrg(t)
	code, _ := must2(t)(db.CreateActivationCode(o.ID, "ann"))
	identity := make([]byte, 32)
	identity[0] = 1 // a small-order point: any signature of R=identity, S=0 verifies
	for _, pub := range [][]byte{nil, make([]byte, 31), identity} {
		a := testActivation(1)
		a.PublicKey = pub
		_, _, err := db.ActivateDevice([]byte(code), a)
		wantErr(t, err, approval.ErrPublicKey)
	}
	a := testActivation(1)
	a.PushToken = strings.Repeat("p", MaxKeyBytes+1)
	_, _, err := db.ActivateDevice([]byte(code), a)
	wantErr(t, err, ErrTooLarge)
	_, _, err = db.ActivateDevice([]byte(code), testActivation(1))
	check(t, err)
}

// TestActivateConcurrently: of activations racing with one code, exactly
// one registers a device.
func TestActivateConcurrently(t *testing.T) {
	db, o, _ := annOrg(t)
	code, _ := must2(t)(db.CreateActivationCode(o.ID, "ann"))
	errs := race(8, func(i int) error {
		_, _, err := db.ActivateDevice([]byte(code), testActivation(byte(i+1)))
		return err
	})
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, ErrNotFound):
			t.Errorf("unexpected %v", err)
		}
	}
	if ok != 1 {
		t.Fatalf("%d activations succeeded with one code", ok)
	}
	if u := must[User](t)(db.User(o.ID, "ann")); u.Devices != 1 || countKind(t, db, kindDevice) != 1 {
		t.Fatalf("ann counts %d devices, %d stored", u.Devices, countKind(t, db, kindDevice))
	}
}

// FuzzApprovalFamilyRecords: the family's record parsers never panic, and
// what they accept encodes back to a record that parses to the same
// values (user, device).
func FuzzApprovalFamilyRecords(f *testing.F) {
	f.Add(appendUserRec(nil, &userRec{createdAt: 5, devices: 2, mobile: []byte("+14155552671"), email: []byte("a@b"), name: []byte("Ann")}))
	f.Add(appendDeviceRec(nil, &Device{UserID: "ann", Platform: "ios", AppVersion: "2.1", Model: "m", PushToken: "p", Jailbroken: true, CreatedAt: 1, RevokedAt: 2}))
	f.Add(appendActivationRec(nil, OrgID{1}, &[32]byte{2}, &ActivationCode{UserID: "ann", CreatedAt: 1, ExpiresAt: 9}))
	f.Add(appendTokenRec(nil, OrgID{1}, &[32]byte{2}, "dev_x"))
	f.Fuzz(func(t *testing.T, v []byte) {
		var u, u2 userRec
		if parseUserRec(v, &u) == nil {
			enc := appendUserRec(nil, &u)
			if err := parseUserRec(enc, &u2); err != nil || !reflect.DeepEqual(u, u2) {
				t.Fatalf("user %x: re-encoded %x parses to %+v, %v", v, enc, u2, err)
			}
		}
		var d, d2 Device
		if fillDevice(&d, OrgID{1}, []byte("dev_x"), v) == nil {
			enc := appendDeviceRec(nil, &d)
			err := fillDevice(&d2, OrgID{1}, []byte("dev_x"), enc)
			d.buf, d2.buf = nil, nil
			if err != nil || !reflect.DeepEqual(d, d2) {
				t.Fatalf("device %x: re-encoded %x parses to %+v, %v", v, enc, d2, err)
			}
		}
		_, _, _ = parseActivationRec(v, new(ActivationCode))
		_, _, _, _ = parseTokenRec(v)
	})
}
