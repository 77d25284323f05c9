package store

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/countersign/countersign/engine/approval"
)

// durable is a store on an in-memory filesystem that a test can close and
// open again, to see what survives a restart.
type durable struct {
	t   *testing.T
	fs  vfs.FS
	clk *clock
	db  *DB
}

func openDurable(t *testing.T) *durable {
	d := &durable{t: t, fs: vfs.NewMem(), clk: newClock()}
	d.open()
	t.Cleanup(func() { _ = d.db.Close() })
	return d
}

func (d *durable) open() {
	d.t.Helper()
	db, err := Open(Options{Dir: "db", FS: d.fs, Now: d.clk.Now})
	if err != nil {
		d.t.Fatal(err)
	}
	d.db = db
}

// reopen closes the store and opens it again on the same filesystem.
func (d *durable) reopen() *DB {
	d.t.Helper()
	check(d.t, d.db.Close())
	d.open()
	return d.db
}

func ptr(s string) *string { return &s }

func TestNormalizeMobile(t *testing.T) {
	for _, c := range []struct{ cc, in, want, err string }{
		{"", "+14155552671", "+14155552671", ""},
		{"", " +1 (415) 555-2671 ", "+14155552671", ""},
		{"44", "07911 123456", "+447911123456", ""},
		{"+44", "7911123456", "+447911123456", ""},
		{"31", "06 12345678", "+31612345678", ""},
		{"1", "+14155552671", "+14155552671", ""},
		{"", "4155552671", "", "has no country code"},
		{"", "", "", "empty"},
		{"", "+1415", "", "not a valid number"},
		{"999", "12345678", "", "not a country calling code"},
		{"x1", "12345678", "", "not a country calling code"},
		{"44", "+14155552671", "", "not a number of country code 44"},
		{"", "+" + strings.Repeat("1", 80), "", "longer than"},
		{"", "+1 415 CALL ME", "", "invalid mobile"},
	} {
		got, err := NormalizeMobile(c.cc, c.in)
		switch {
		case c.err == "" && (err != nil || got != c.want):
			t.Errorf("NormalizeMobile(%q, %q) = %q, %v; want %q", c.cc, c.in, got, err, c.want)
		case c.err != "" && (!errors.Is(err, ErrMobile) || !strings.Contains(err.Error(), c.err)):
			t.Errorf("NormalizeMobile(%q, %q) = %q, %v; want an ErrMobile saying %q", c.cc, c.in, got, err, c.err)
		}
	}
}

func TestNormalizeEmail(t *testing.T) {
	for in, want := range map[string]string{
		" Ann.Smith@Example.COM ":          "ann.smith@example.com",
		"a@b":                              "a@b",
		"":                                 "",
		"no-at-sign":                       "",
		"@example.com":                     "",
		"ann@":                             "",
		"a@b@c":                            "",
		"ann smith@example.com":            "",
		"ann\x00@example.com":              "",
		strings.Repeat("a", 250) + "@b.cc": "",
	} {
		got, err := NormalizeEmail(in)
		if want == "" {
			if !errors.Is(err, ErrEmail) {
				t.Errorf("NormalizeEmail(%q) = %q, %v; want ErrEmail", in, got, err)
			}
		} else if err != nil || got != want {
			t.Errorf("NormalizeEmail(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

// TestUserRoundTrip: a user is stored normalised, found by id, mobile and
// e-mail, and is still there after a restart.
func TestUserRoundTrip(t *testing.T) {
	d := openDurable(t)
	o, _ := newOrg(t, d.db, "acme")
	u, err := d.db.CreateUser(o.ID, User{UserID: "ann", Mobile: "+1 415 555 2671", Email: "Ann@Example.com", Name: "Ann Smith"})
	check(t, err)
	want := User{OrgID: o.ID, UserID: "ann", Mobile: "+14155552671", Email: "ann@example.com", Name: "Ann Smith",
		CreatedAt: d.clk.Now().UnixMilli()}
	if u != want {
		t.Fatalf("created %+v, want %+v", u, want)
	}
	db := d.reopen()
	for name, get := range map[string]func() (User, error){
		"id":     func() (User, error) { return db.User(o.ID, "ann") },
		"mobile": func() (User, error) { return db.UserByMobile(o.ID, "+14155552671") },
		"email":  func() (User, error) { return db.UserByEmail(o.ID, "ANN@example.com") },
	} {
		got, err := get()
		if err != nil || got != want {
			t.Errorf("by %s after reopen: %+v, %v; want %+v", name, got, err, want)
		}
	}
	_, err = db.UserByMobile(o.ID, "4155552671")
	wantErr(t, err, ErrMobile)
	_, err = db.UserByMobile(o.ID, "+14155552672")
	wantErr(t, err, ErrNotFound)
}

func TestCreateUserRefusals(t *testing.T) {
	db, _ := openMem(t)
	o, _ := newOrg(t, db, "acme")
	check(t, must[User](t)(db.CreateUser(o.ID, User{UserID: "ann", Mobile: "+14155552671", Email: "ann@example.com"})).validate())
	for _, c := range []struct {
		u    User
		want error
	}{
		{User{UserID: "ann"}, ErrExists},
		{User{UserID: "bob", Mobile: "+1 415-555-2671"}, ErrMobileTaken},
		{User{UserID: "bob", Email: "ANN@example.com"}, ErrEmailTaken},
		{User{UserID: ""}, ErrUserID},
		{User{UserID: strings.Repeat("u", 257)}, ErrUserID},
		{User{UserID: "bob", Mobile: "12"}, ErrMobile},
		{User{UserID: "bob", Email: "bob"}, ErrEmail},
		{User{UserID: "bob", Name: strings.Repeat("n", MaxKeyBytes+1)}, ErrTooLarge},
	} {
		_, err := db.CreateUser(o.ID, c.u)
		wantErr(t, err, c.want)
	}
	if !strings.Contains(fmt.Sprint(ErrMobileTaken), "mobile") || !strings.Contains(fmt.Sprint(ErrEmailTaken), "e-mail") {
		t.Error("the taken errors must name their field")
	}
	_, err := db.CreateUser(OrgID{1, 2, 3}, User{UserID: "ann"})
	wantErr(t, err, ErrNotFound)
	// A user id of the longest length is a user.
	check(t, must[User](t)(db.CreateUser(o.ID, User{UserID: strings.Repeat("u", 256)})).validate())
}

// validate lets a created user be passed to check.
func (u User) validate() error {
	if u.UserID == "" {
		return errors.New("no user id")
	}
	return nil
}

// TestContactUniquePerOrg: a mobile number and an e-mail address are
// unique within an organization, and another organization may have them.
func TestContactUniquePerOrg(t *testing.T) {
	db, _ := openMem(t)
	a, _ := newOrg(t, db, "a")
	b, _ := newOrg(t, db, "b")
	ann := User{UserID: "ann", Mobile: "+447911123456", Email: "ann@example.com"}
	must[User](t)(db.CreateUser(a.ID, ann))
	must[User](t)(db.CreateUser(b.ID, ann))
	for _, org := range []Org{a, b} {
		u := must[User](t)(db.UserByMobile(org.ID, "+447911123456"))
		if u.OrgID != org.ID || u.UserID != "ann" {
			t.Fatalf("org %s: %+v", org.ID, u)
		}
	}
	_, err := db.CreateUser(a.ID, User{UserID: "bob", Mobile: ann.Mobile})
	wantErr(t, err, ErrMobileTaken)
	// Deleting a's ann frees the number in a only.
	check(t, db.DeleteUser(a.ID, "ann"))
	must[User](t)(db.CreateUser(a.ID, User{UserID: "bob", Mobile: ann.Mobile, Email: ann.Email}))
	if u := must[User](t)(db.UserByEmail(b.ID, ann.Email)); u.UserID != "ann" {
		t.Fatalf("b's ann: %+v", u)
	}
}

// TestUpdateUserMovesIndexes: PATCH semantics, and the indexes follow the
// values in the same batch.
func TestUpdateUserMovesIndexes(t *testing.T) {
	d := openDurable(t)
	o, _ := newOrg(t, d.db, "acme")
	must[User](t)(d.db.CreateUser(o.ID, User{UserID: "ann", Mobile: "+14155552671", Email: "ann@example.com", Name: "Ann"}))
	must[User](t)(d.db.CreateUser(o.ID, User{UserID: "bob", Mobile: "+14155552672"}))

	u := must[User](t)(d.db.UpdateUser(o.ID, "ann", UserPatch{Mobile: ptr("+1 415 555 2673")}))
	if u.Mobile != "+14155552673" || u.Email != "ann@example.com" || u.Name != "Ann" {
		t.Fatalf("after mobile patch: %+v", u)
	}
	_, err := d.db.UpdateUser(o.ID, "ann", UserPatch{Mobile: ptr("+14155552672")})
	wantErr(t, err, ErrMobileTaken)
	_, err = d.db.UpdateUser(o.ID, "ann", UserPatch{Email: ptr("not an address")})
	wantErr(t, err, ErrEmail)
	u = must[User](t)(d.db.UpdateUser(o.ID, "ann", UserPatch{Email: ptr(""), Name: ptr("Ann S.")}))
	if u.Email != "" || u.Name != "Ann S." || u.Mobile != "+14155552673" {
		t.Fatalf("after clearing e-mail: %+v", u)
	}
	// Re-setting the same value is no conflict with oneself.
	must[User](t)(d.db.UpdateUser(o.ID, "ann", UserPatch{Mobile: ptr("+14155552673")}))

	db := d.reopen()
	_, err = db.UserByMobile(o.ID, "+14155552671")
	wantErr(t, err, ErrNotFound)
	_, err = db.UserByEmail(o.ID, "ann@example.com")
	wantErr(t, err, ErrNotFound)
	if got := must[User](t)(db.UserByMobile(o.ID, "+14155552673")); got != u {
		t.Fatalf("by new mobile: %+v, want %+v", got, u)
	}
	// The freed values can be taken by another user.
	must[User](t)(db.UpdateUser(o.ID, "bob", UserPatch{Mobile: ptr("+14155552671"), Email: ptr("ann@example.com")}))
	_, err = db.UpdateUser(o.ID, "carol", UserPatch{Name: ptr("x")})
	wantErr(t, err, ErrNotFound)
}

// TestDeleteUser removes the user with everything that hangs off it.
func TestDeleteUser(t *testing.T) {
	db, _ := openMem(t)
	o, _ := newOrg(t, db, "acme")
	must[User](t)(db.CreateUser(o.ID, User{UserID: "ann", Mobile: "+14155552671", Email: "ann@example.com"}))
	code, _ := must2(t)(db.CreateActivationCode(o.ID, "ann"))
	_, token, err := db.ActivateDevice([]byte(code), testActivation(1))
	check(t, err)
	check(t, db.UpdateUserState(o.ID, "ann", new(approval.UserState), lockNow(db)))

	check(t, db.DeleteUser(o.ID, "ann"))
	_, err = db.User(o.ID, "ann")
	wantErr(t, err, ErrNotFound)
	_, err = db.UserByMobile(o.ID, "+14155552671")
	wantErr(t, err, ErrNotFound)
	_, err = db.UserByEmail(o.ID, "ann@example.com")
	wantErr(t, err, ErrNotFound)
	wantErr(t, db.DeviceByToken([]byte(token), new(Device)), ErrNotFound)
	wantErr(t, db.UserState(o.ID, "ann", new(approval.UserState)), ErrNotFound)
	for _, kind := range []byte{kindUser, kindUserByMobile, kindUserByEmail, kindUserState, kindDevice, kindDeviceByUser, kindDeviceByToken} {
		if n := countKind(t, db, kind); n != 0 {
			t.Errorf("kind %#x: %d records left", kind, n)
		}
	}
	wantErr(t, db.DeleteUser(o.ID, "ann"), ErrNotFound)
	// A user of the same id starts afresh.
	u := must[User](t)(db.CreateUser(o.ID, User{UserID: "ann"}))
	if u.Devices != 0 {
		t.Fatalf("new ann has %d devices", u.Devices)
	}
}

// TestListUsersPaged: pages of limit users in id order, each cursor
// continuing where the last page ended, and no other organization's users.
func TestListUsersPaged(t *testing.T) {
	db, _ := openMem(t)
	a, _ := newOrg(t, db, "a")
	b, _ := newOrg(t, db, "b")
	var want []string
	for i := range 7 {
		id := fmt.Sprintf("user-%02d", i)
		want = append(want, id)
		must[User](t)(db.CreateUser(a.ID, User{UserID: id}))
	}
	// Ids that are prefixes of others, or hold a NUL, page like any other.
	for _, id := range []string{"user-0", "user-00\x00"} {
		must[User](t)(db.CreateUser(a.ID, User{UserID: id}))
	}
	want = append([]string{"user-0", "user-00", "user-00\x00"}, want[1:]...)
	must[User](t)(db.CreateUser(b.ID, User{UserID: "user-b"}))

	var got []string
	cursor, pages := "", 0
	for {
		users, next, err := db.ListUsers(a.ID, 3, cursor)
		check(t, err)
		pages++
		for _, u := range users {
			if u.OrgID != a.ID {
				t.Fatalf("user of %s in %s's list", u.OrgID, a.ID)
			}
			got = append(got, u.UserID)
		}
		if next == "" {
			break
		}
		cursor = next
	}
	if fmt.Sprintf("%q", got) != fmt.Sprintf("%q", want) || pages != 3 {
		t.Fatalf("%d pages: %q, want %q", pages, got, want)
	}
	all, next, err := db.ListUsers(a.ID, 0, "")
	check(t, err)
	if len(all) != len(want) || next != "" {
		t.Fatalf("default limit: %d users, next %q", len(all), next)
	}
	_, _, err = db.ListUsers(a.ID, 3, "not base64!")
	wantErr(t, err, ErrCursor)
	empty, next, err := db.ListUsers(newOrgID(t, db), 3, "")
	if err != nil || len(empty) != 0 || next != "" {
		t.Fatalf("empty org: %v %q %v", empty, next, err)
	}
}

func newOrgID(t *testing.T, db *DB) OrgID {
	o, _ := newOrg(t, db, "another")
	return o.ID
}

// TestUserRecordsCorrupt: a damaged record of the family is ErrCorrupt,
// never a panic, at every truncation.
func TestUserRecordsCorrupt(t *testing.T) {
	user := appendUserRec(nil, &userRec{createdAt: 5, devices: 2, mobile: []byte("+1"), email: []byte("a@b"), name: []byte("n")})
	dev := appendDeviceRec(nil, &Device{UserID: "ann", Platform: "ios", PushToken: "p", CreatedAt: 1})
	act := appendActivationRec(nil, orgOf(1), &[32]byte{}, &ActivationCode{UserID: "ann", ExpiresAt: 9})
	tok := appendTokenRec(nil, orgOf(1), &[32]byte{}, "dev_x")
	for name, rec := range map[string][]byte{"user": user, "device": dev, "activation": act, "token": tok} {
		parse := func(v []byte) error {
			switch name {
			case "user":
				return parseUserRec(v, new(userRec))
			case "device":
				return parseDeviceRec(v, new(deviceRec))
			case "activation":
				_, _, err := parseActivationRec(v, new(ActivationCode))
				return err
			}
			_, _, _, err := parseTokenRec(v)
			return err
		}
		check(t, parse(rec))
		for n := range len(rec) {
			if name == "user" && n >= len(rec)-1 || name == "device" && n >= len(rec)-1 || name == "activation" && n >= len(rec)-2 || name == "token" && n >= len(rec)-4 {
				continue // the trailing part runs to the end: a shorter one still parses
			}
			if err := parse(rec[:n]); !errors.Is(err, ErrCorrupt) {
				t.Errorf("%s truncated to %d: %v", name, n, err)
			}
		}
		bad := append([]byte{0x7e}, rec[1:]...)
		if err := parse(bad); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s with an unknown tag: %v", name, err)
		}
	}
}

// TestUsersConcurrentMobile: users created at once with one mobile number
// (and one e-mail address): exactly one gets it. On a disk, where each
// commit waits for an fsync, so that a check and a write that were not
// serialised would have the time to interleave.
func TestUsersConcurrentMobile(t *testing.T) {
	db, _ := openSynced(t)
	o, _ := newOrg(t, db, "acme")
	errs := race(8, func(i int) error {
		_, err := db.CreateUser(o.ID, User{UserID: fmt.Sprintf("user-%d", i), Mobile: "+14155552671", Email: "a@example.com"})
		return err
	})
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, ErrMobileTaken):
			t.Errorf("unexpected %v", err)
		}
	}
	if ok != 1 || countKind(t, db, kindUserByMobile) != 1 || countKind(t, db, kindUserByEmail) != 1 {
		t.Fatalf("%d users got one mobile number", ok)
	}
}

// TestApprovalFamilyKeys: the new kinds decode back to their parts, and a
// user's per-user scan prefix (devices, approvals, pending) covers that
// user's records only, whatever bytes the ids hold.
func TestApprovalFamilyKeys(t *testing.T) {
	ids := adversarialIDs(rand.New(rand.NewPCG(7, 8)), 40)
	org := orgOf(3)
	h := sha256Of("secret")
	for _, k := range [][]byte{appendHashKey(nil, kindDeviceByToken, &h), appendHashKey(nil, kindActivation, &h)} {
		if p, ok := decodeKey(k); !ok || string(p.id) != string(h[:]) {
			t.Fatalf("hash key %x decodes to %+v %v", k, p, ok)
		}
	}
	type rec struct {
		user string
		key  []byte
	}
	var recs []rec
	for i, user := range ids {
		other := ids[(i+1)%len(ids)]
		for _, k := range []struct {
			kind byte
			key  []byte
		}{
			{kindUser, appendUserKey(nil, org, user)},
			{kindUserState, appendUserStateKey(nil, org, user)},
			{kindDevice, appendDeviceKey(nil, org, user)},
			{kindApproval, appendApprovalKey(nil, org, user)},
		} {
			if p, ok := decodeKey(k.key); !ok || p.kind != k.kind || p.org != org || string(p.id) != user {
				t.Fatalf("key %x decodes to %+v %v", k.key, p, ok)
			}
		}
		dk := appendDeviceByUserKey(nil, org, user, other)
		if p, ok := decodeKey(dk); !ok || string(p.id) != user || string(p.name) != other {
			t.Fatalf("device-by-user key %x decodes to %+v %v", dk, p, ok)
		}
		recs = append(recs, rec{user, dk})
		for _, kind := range []byte{kindApprovalByUser, kindPending} {
			ak := appendApprovalIndexKey(nil, kind, org, user, int64(i)<<20, other)
			if p, ok := decodeKey(ak); !ok || p.kind != kind || string(p.id) != user || p.at != int64(i)<<20 || string(p.name) != other {
				t.Fatalf("approval index key %x decodes to %+v %v", ak, p, ok)
			}
			recs = append(recs, rec{user, ak})
		}
	}
	for _, user := range ids {
		for _, kind := range []byte{kindDeviceByUser, kindApprovalByUser, kindPending} {
			lo := appendPerUserPrefix(nil, kind, org, user)
			hi := prefixEnd(nil, lo)
			for _, r := range recs {
				inside := bytes.Compare(r.key, lo) >= 0 && bytes.Compare(r.key, hi) < 0
				if inside && (r.user != user || r.key[0] != kind) {
					t.Fatalf("kind %#x: %q's record %x inside %q's scan", kind, r.user, r.key, user)
				}
			}
		}
	}
	for _, bad := range [][]byte{
		{kindDeviceByToken, 1, 2},
		append([]byte{kindPending}, append(org[:], 1, 'u', 0, 0)...), // short time
		append([]byte{kindDeviceByUser}, append(org[:], 9, 'u')...),  // length beyond the key
		{kindUser, 1},
	} {
		if p, ok := decodeKey(bad); ok {
			t.Errorf("decodeKey(%x) = %+v, ok", bad, p)
		}
	}
}

// TestUserTenancy: another organization's user answers exactly as a
// missing one, to every read and write.
func TestUserTenancy(t *testing.T) {
	db, _ := openMem(t)
	a, _ := newOrg(t, db, "a")
	b, _ := newOrg(t, db, "b")
	must[User](t)(db.CreateUser(a.ID, User{UserID: "ann", Mobile: "+14155552671", Email: "ann@example.com"}))
	for name, err := range map[string]error{
		"get":       errOf(db.User(b.ID, "ann")),
		"by mobile": errOf(db.UserByMobile(b.ID, "+14155552671")),
		"by email":  errOf(db.UserByEmail(b.ID, "ann@example.com")),
		"update":    errOf(db.UpdateUser(b.ID, "ann", UserPatch{Name: ptr("x")})),
		"delete":    db.DeleteUser(b.ID, "ann"),
		"no org":    errOf(db.User(OrgID{}, "ann")),
	} {
		if !errors.Is(err, ErrNotFound) {
			t.Errorf("%s from b: %v, want ErrNotFound", name, err)
		}
	}
	if u := must[User](t)(db.User(a.ID, "ann")); u.Name != "" {
		t.Fatalf("a's ann changed: %+v", u)
	}
}
