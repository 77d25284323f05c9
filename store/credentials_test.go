package store

import (
	"testing"
)

func TestAPIKeys(t *testing.T) {
	db, _ := openMem(t)
	o, key1 := newOrg(t, db, "acme")
	key2 := must[string](t)(db.AddAPIKey(o.ID))
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
