package store

import (
	"bytes"
	"crypto/sha256"
	"regexp"
	"strings"
	"testing"
)

var (
	apiKeyRE = regexp.MustCompile(`^csk_[A-Za-z0-9_-]{43}$`)
	cidRE    = regexp.MustCompile(`^cid_[a-z2-7]{24}$`)
	orgIDRE  = regexp.MustCompile(`^[0-9a-f]{16}$`)
)

func TestCreateOrg(t *testing.T) {
	db, c := openMem(t)
	o, key, err := db.CreateOrg("acme", []byte(`{"verdict":"values-only"}`))
	check(t, err)
	if !orgIDRE.MatchString(o.ID.String()) || !cidRE.MatchString(o.CID) || !apiKeyRE.MatchString(key) || len(key) != APIKeyLen {
		t.Fatalf("formats: id %q cid %q key %q", o.ID, o.CID, key)
	}
	if o.Name != "acme" || string(o.Policy) != `{"verdict":"values-only"}` || o.CreatedAt != c.Now().UnixMilli() {
		t.Fatalf("org = %+v", o)
	}

	for name, got := range map[string]func() (Org, error){
		"id": func() (Org, error) { return db.OrgByID(o.ID) },
		"ID": func() (Org, error) {
			id, err := ParseOrgID(strings.ToUpper(o.ID.String()))
			check(t, err)
			return db.OrgByID(id)
		},
		"cid": func() (Org, error) { return db.OrgByCID([]byte(o.CID)) },
		"key": func() (Org, error) { return db.OrgByAPIKey([]byte(key)) },
	} {
		g, err := got()
		check(t, err)
		if g.ID != o.ID || g.CID != o.CID || g.Name != o.Name || !bytes.Equal(g.Policy, o.Policy) {
			t.Errorf("by %s: %+v, want %+v", name, g, o)
		}
	}

	// The secret is stored only as its hash.
	if rawContains(t, db, []byte(key)) || rawContains(t, db, []byte(key[len(APIKeyPrefix):])) {
		t.Fatal("API key stored in clear")
	}
	h := sha256.Sum256([]byte(key))
	if !rawContains(t, db, h[:]) {
		t.Fatal("API key hash not stored")
	}

	// Two orgs never share ids or keys.
	o2, key2 := newOrg(t, db, "globex")
	if o2.ID == o.ID || o2.CID == o.CID || key2 == key {
		t.Fatal("ids repeat")
	}
	orgs := must[[]Org](t)(db.Orgs())
	if len(orgs) != 2 || bytes.Compare(orgs[0].ID[:], orgs[1].ID[:]) > 0 {
		t.Fatalf("orgs = %+v", orgs)
	}
}

func TestOrgLookupMisses(t *testing.T) {
	db, _ := openMem(t)
	o, key := newOrg(t, db, "acme")
	flipped := []byte(key)
	flipped[10] ^= 1
	wrongPrefix := []byte("xsk_" + key[4:])
	for _, k := range [][]byte{nil, []byte(""), flipped, wrongPrefix, []byte(key[:len(key)-1]), []byte(key + "A")} {
		_, err := db.OrgByAPIKey(k)
		wantErr(t, err, ErrNotFound)
	}
	for _, id := range []string{"", "0123", o.ID.String() + "0", "zzzzzzzzzzzzzzzz"} {
		_, err := ParseOrgID(id)
		wantErr(t, err, ErrOrgID)
	}
	for _, id := range []OrgID{{}, {1, 2, 3}} {
		_, err := db.OrgByID(id)
		wantErr(t, err, ErrNotFound)
	}
	for _, cid := range []string{"", "cid_", o.CID + "a", o.ID.String()} {
		_, err := db.OrgByCID([]byte(cid))
		wantErr(t, err, ErrNotFound)
	}
	_, err := db.AddAPIKey(OrgID{}, ScopeBackend)
	wantErr(t, err, ErrNotFound)
	wantErr(t, db.SetOrgPolicy(OrgID{}, nil), ErrNotFound)
	wantErr(t, db.BindCert(OrgID{1}, [32]byte{}), ErrNotFound)
	_, _, err = db.CreateOrg(string(make([]byte, MaxKeyBytes+1)), nil)
	wantErr(t, err, ErrTooLarge)
}

func TestOrgUpdates(t *testing.T) {
	db, _ := openMem(t)
	o, _ := newOrg(t, db, "acme")
	check(t, db.SetOrgPolicy(o.ID, []byte(`{"minScore":9000}`)))
	a, b := sha256.Sum256([]byte("cert a")), sha256.Sum256([]byte("cert b"))
	check(t, db.BindCert(o.ID, a))
	check(t, db.BindCert(o.ID, b))
	check(t, db.BindCert(o.ID, a)) // again: no duplicate
	g := must[Org](t)(db.OrgByID(o.ID))
	if string(g.Policy) != `{"minScore":9000}` || len(g.CertFingerprints) != 2 || g.CertFingerprints[0] != a || g.CertFingerprints[1] != b {
		t.Fatalf("org = %+v", g)
	}
	check(t, db.SetOrgPolicy(o.ID, nil))
	if g := must[Org](t)(db.OrgByID(o.ID)); g.Policy != nil || len(g.CertFingerprints) != 2 || g.Name != "acme" || g.CID != o.CID {
		t.Fatalf("after clearing policy: %+v", g)
	}
}

func TestOrgGeneration(t *testing.T) {
	db, _ := openMem(t)
	gen := db.OrgGeneration()
	changed := func(what string) {
		t.Helper()
		if g := db.OrgGeneration(); g <= gen {
			t.Fatalf("%s: generation %d, was %d", what, g, gen)
		} else {
			gen = g
		}
	}
	same := func(what string) {
		t.Helper()
		if g := db.OrgGeneration(); g != gen {
			t.Fatalf("%s: generation %d, was %d", what, g, gen)
		}
	}
	o, key := newOrg(t, db, "acme")
	changed("CreateOrg")
	must[string](t)(db.AddAPIKey(o.ID, ScopeBackend))
	changed("AddAPIKey")
	check(t, db.SetOrgPolicy(o.ID, []byte(`{"minScore":9000}`)))
	changed("SetOrgPolicy")
	check(t, db.BindCert(o.ID, [32]byte{1}))
	changed("BindCert")
	must[Org](t)(db.OrgByAPIKey([]byte(key)))
	must[Org](t)(db.OrgByCID([]byte(o.CID)))
	must[Org](t)(db.OrgByID(o.ID))
	must[[]Org](t)(db.Orgs())
	newSession(t, db, o.ID, "csid-0001")
	same("reads and sessions")
}
