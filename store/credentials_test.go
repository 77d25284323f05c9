package store

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/cockroachdb/pebble/v2"
)

func TestAPIKeys(t *testing.T) {
	db, _ := openMem(t)
	o, key1 := newOrg(t, db, "acme")
	key2 := must[string](t)(db.AddAPIKey(o.ID, ScopeBackend))
	if key2 == key1 || !apiKeyRE.MatchString(key2) {
		t.Fatalf("second key %q", key2)
	}
	other, otherKey := newOrg(t, db, "globex")
	for k, want := range map[string]OrgID{key1: o.ID, key2: o.ID, otherKey: other.ID} {
		if g := must[Org](t)(db.OrgByAPIKey([]byte(k))); g.ID != want {
			t.Errorf("key %s -> %s, want %s", k, g.ID, want)
		}
	}
}

// TestAPIKeyScopes: a key resolves to its organization and its scope;
// CreateOrg's key is a backend key.
func TestAPIKeyScopes(t *testing.T) {
	db, _ := openMem(t)
	o, backend := newOrg(t, db, "acme")
	admin := must[string](t)(db.AddAPIKey(o.ID, ScopeAdmin))
	if !apiKeyRE.MatchString(admin) {
		t.Fatalf("admin key %q", admin)
	}
	for key, want := range map[string]Scope{backend: ScopeBackend, admin: ScopeAdmin} {
		g, scope, err := db.APIKey([]byte(key))
		check(t, err)
		if g.ID != o.ID || scope != want {
			t.Errorf("key -> %s %s, want %s %s", g.ID, scope, o.ID, want)
		}
	}
	if _, err := db.AddAPIKey(o.ID, numScopes); !errors.Is(err, ErrScope) {
		t.Errorf("AddAPIKey of an unknown scope: %v, want ErrScope", err)
	}
	if ScopeBackend.String() != "backend" || ScopeAdmin.String() != "admin" || numScopes.String() != "scope(2)" {
		t.Errorf("scope names %s %s %s", ScopeBackend, ScopeAdmin, numScopes)
	}
}

// TestAPIKeyWithoutScope: a key record in the format written before keys
// had scopes (01 org:8 keyHash:32 created:8, spelled out here rather than
// by the encoder, so a change to the encoder cannot hide a break) reads as
// a backend key: old data directories keep working.
func TestAPIKeyWithoutScope(t *testing.T) {
	db, _ := openMem(t)
	o, _ := newOrg(t, db, "acme")
	key := "csk_" + "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
	hash := sha256.Sum256([]byte(key))
	rec := []byte{0x01}
	rec = append(rec, o.ID[:]...)
	rec = append(rec, hash[:]...)
	rec = binary.BigEndian.AppendUint64(rec, 1763800000000)
	k := append([]byte{kindOrgByKey}, hash[:]...)
	check(t, db.pdb.Set(k, rec, pebble.Sync))

	g, scope, err := db.APIKey([]byte(key))
	check(t, err)
	if g.ID != o.ID || scope != ScopeBackend {
		t.Fatalf("old record -> %s %s, want %s backend", g.ID, scope, o.ID)
	}
}

// TestAPIKeyRecordFormats: the scoped format round-trips, and what is
// neither format (a backend scope in the scoped one, an unknown scope, a
// wrong length) is ErrCorrupt.
func TestAPIKeyRecordFormats(t *testing.T) {
	h := [32]byte{9}
	org := orgOf(7)
	if v := appendScopedAPIKeyRec(nil, org, &h, 5, ScopeBackend); len(v) != apiKeyRecLen || v[0] != tagV1 {
		t.Fatalf("a backend key is not written in the unscoped format: % x", v)
	}
	v := appendScopedAPIKeyRec(nil, org, &h, 5, ScopeAdmin)
	o, hash, scope, err := parseAPIKeyRec(v)
	check(t, err)
	if o != org || [32]byte(hash) != h || scope != ScopeAdmin {
		t.Fatalf("round trip: %s %x %s", o, hash, scope)
	}
	for name, bad := range map[string][]byte{
		"backend in the scoped format": append(append([]byte(nil), v[:len(v)-1]...), byte(ScopeBackend)),
		"unknown scope":                append(append([]byte(nil), v[:len(v)-1]...), byte(numScopes)),
		"scoped without its scope":     v[:len(v)-1],
		"unscoped with a scope":        append(appendAPIKeyRec(nil, org, &h, 5), byte(ScopeAdmin)),
		"bytes left over":              append(append([]byte(nil), v...), 0),
	} {
		if _, _, _, err := parseAPIKeyRec(bad); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %v, want ErrCorrupt", name, err)
		}
	}
}
