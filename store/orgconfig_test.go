package store

import (
	"bytes"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// TestOrgDocumentVersions: a document never stored is version 0 with no
// JSON; each PUT bumps the version and changes the org generation (so
// compiled views rebuild); another organization's stays its own; an
// unknown organization is ErrNotFound.
func TestOrgDocumentVersions(t *testing.T) {
	db, _ := openMem(t)
	o, _ := newOrg(t, db, "acme")
	other, _ := newOrg(t, db, "other")
	d := must[OrgDoc](t)(db.OrgDocument(o.ID, DocRules))
	if d.Version != 0 || d.JSON != nil {
		t.Fatalf("never stored: %+v", d)
	}
	for i, js := range []string{`{"a":1}`, `{"a":2}`} {
		gen := db.OrgGeneration()
		v := must[uint64](t)(db.PutOrgDocument(o.ID, DocRules, []byte(js)))
		if v != uint64(i+1) || db.OrgGeneration() == gen {
			t.Fatalf("put %d: version %d, generation %d -> %d", i, v, gen, db.OrgGeneration())
		}
	}
	d = must[OrgDoc](t)(db.OrgDocument(o.ID, DocRules))
	if d.Version != 2 || string(d.JSON) != `{"a":2}` {
		t.Fatalf("read back %+v", d)
	}
	if v := must[uint64](t)(db.DocumentVersion(o.ID, DocRules)); v != 2 {
		t.Fatalf("DocumentVersion %d", v)
	}
	if v := must[uint64](t)(db.DocumentVersion(o.ID, DocSettings)); v != 0 {
		t.Fatalf("settings version %d", v)
	}
	if v := must[uint64](t)(db.DocumentVersion(other.ID, DocRules)); v != 0 {
		t.Fatalf("other org's version %d", v)
	}
	_, err := db.PutOrgDocument(OrgID{9}, DocRules, []byte(`{}`))
	wantErr(t, err, ErrNotFound)
	_, err = db.OrgDocument(o.ID, DocKind(9))
	wantErr(t, err, ErrDocKind)
}

// TestAPIKeyListAndRevoke: keys are listed by id, prefix, name and scope,
// never with the key; a revoked key stops resolving; another
// organization's key id is not found.
func TestAPIKeyListAndRevoke(t *testing.T) {
	db, _ := openMem(t)
	o, first := newOrg(t, db, "acme")
	other, _ := newOrg(t, db, "other")
	key, info, err := db.CreateAPIKey(o.ID, ScopeAdmin, "ops laptop")
	check(t, err)
	if info.ID != APIKeyIDOf([]byte(key)) || info.Prefix != key[:8] || info.Name != "ops laptop" || info.Scope != ScopeAdmin {
		t.Fatalf("created %+v for %q", info, key)
	}
	list := must[[]APIKeyInfo](t)(db.APIKeys(o.ID))
	if len(list) != 2 {
		t.Fatalf("listed %+v", list)
	}
	ids := map[string]APIKeyInfo{}
	for _, k := range list {
		ids[k.ID] = k
	}
	if ids[info.ID] != info || ids[APIKeyIDOf([]byte(first))].Scope != ScopeBackend {
		t.Fatalf("listed %+v, want %+v and the first key", list, info)
	}
	wantErr(t, db.RevokeAPIKey(other.ID, info.ID), ErrNotFound)
	check(t, db.RevokeAPIKey(o.ID, info.ID))
	_, _, err = db.APIKey([]byte(key))
	wantErr(t, err, ErrNotFound)
	wantErr(t, db.RevokeAPIKey(o.ID, info.ID), ErrNotFound)
	if _, _, err := db.APIKey([]byte(first)); err != nil {
		t.Fatalf("the other key: %v", err)
	}
	if len(must[[]APIKeyInfo](t)(db.APIKeys(o.ID))) != 1 {
		t.Fatal("revoked key still listed")
	}
}

// TestSetCertBindings replaces the set; an empty set unbinds.
func TestSetCertBindings(t *testing.T) {
	db, _ := openMem(t)
	o, _ := newOrg(t, db, "acme")
	a, b := [32]byte{1}, [32]byte{2}
	check(t, db.SetCertBindings(o.ID, [][32]byte{a, b}))
	got := must[Org](t)(db.OrgByID(o.ID))
	if len(got.CertFingerprints) != 2 || got.CertFingerprints[1] != b {
		t.Fatalf("bound %x", got.CertFingerprints)
	}
	check(t, db.SetCertBindings(o.ID, nil))
	if got := must[Org](t)(db.OrgByID(o.ID)); len(got.CertFingerprints) != 0 {
		t.Fatalf("after unbinding: %x", got.CertFingerprints)
	}
}

// TestTOTPSeedSealed: activation creates a seed, sealed (not on disk in
// the clear), bound to its user (copied to another user's record it does
// not open), replaced by the next activation, deleted with the user.
func TestTOTPSeedSealed(t *testing.T) {
	sealer, err := NewSealer(bytes.Repeat([]byte{7}, MasterKeySize), nil)
	check(t, err)
	fs := vfs.NewMem()
	db, err := Open(Options{Dir: "db", FS: fs, Sealer: sealer})
	check(t, err)
	t.Cleanup(func() { _ = db.Close() })
	o, _ := newOrg(t, db, "acme")
	must[User](t)(db.CreateUser(o.ID, User{UserID: "ann"}))
	must[User](t)(db.CreateUser(o.ID, User{UserID: "bob"}))
	_, err = db.TOTPSeed(o.ID, "ann", nil)
	wantErr(t, err, ErrNotFound)
	activate(t, db, o.ID, "ann", 1)
	seed := must[[]byte](t)(db.TOTPSeed(o.ID, "ann", nil))
	if len(seed) != TOTPSeedBytes {
		t.Fatalf("seed of %d bytes", len(seed))
	}
	if rawContains(t, db, seed) {
		t.Fatal("the TOTP seed is stored in the clear")
	}
	// Sealed for ann, it does not open as bob's.
	sealed := must[[]byte](t)(db.readRaw(appendTOTPSeedKey(nil, o.ID, "ann")))
	b := db.pdb.NewBatch()
	check(t, b.Set(appendTOTPSeedKey(nil, o.ID, "bob"), sealed, nil))
	check(t, db.commit(b))
	_, err = db.TOTPSeed(o.ID, "bob", nil)
	wantErr(t, err, ErrSealedOpen)

	activate(t, db, o.ID, "ann", 2)
	if again := must[[]byte](t)(db.TOTPSeed(o.ID, "ann", nil)); bytes.Equal(again, seed) {
		t.Fatal("a new activation kept the old seed")
	}
	check(t, db.DeleteUser(o.ID, "ann"))
	_, err = db.TOTPSeed(o.ID, "ann", nil)
	wantErr(t, err, ErrNotFound)

	plain, _ := openMem(t)
	_, err = plain.TOTPSeed(OrgID{1}, "ann", nil)
	wantErr(t, err, ErrNoSealer)
}

func (db *DB) readRaw(key []byte) ([]byte, error) {
	var out []byte
	err := db.get(key, func(v []byte) error { out = bytes.Clone(v); return nil })
	return out, err
}
