package tenant

import (
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/countersign/countersign/engine/approval"
	"github.com/countersign/countersign/store"
)

func openStore(t *testing.T) *store.DB {
	t.Helper()
	db, err := store.Open(store.Options{Dir: "db", FS: vfs.NewMem()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// TestApprovalsCompiledPerVersion: an organization without documents has
// no rules and the default settings; the compiled entry is reused until a
// PUT of either document, then rebuilt with the new version; a change of
// another organization does not recompile it.
func TestApprovalsCompiledPerVersion(t *testing.T) {
	db := openStore(t)
	org, _, err := db.CreateOrg("acme", nil)
	if err != nil {
		t.Fatal(err)
	}
	oc := NewCache(db, 4)
	a, err := oc.Approvals(org.ID)
	if err != nil || a.Rules != nil || a.Settings != approval.DefaultSettings() {
		t.Fatalf("no documents: %+v, %v", a, err)
	}
	if b, _ := oc.Approvals(org.ID); b != a {
		t.Fatal("recompiled without a change")
	}
	if _, err := db.PutOrgDocument(org.ID, store.DocRules, []byte(`{"ip":{"allow":["10.0.0.0/8"]}}`)); err != nil {
		t.Fatal(err)
	}
	b, err := oc.Approvals(org.ID)
	if err != nil || b == a || b.Rules == nil || b.Rules.Version() != 1 || b.RulesVersion != 1 {
		t.Fatalf("after PUT rules: %+v, %v", b, err)
	}
	if _, err := db.PutOrgDocument(org.ID, store.DocSettings, []byte(`{"approvals":{"maxPending":1}}`)); err != nil {
		t.Fatal(err)
	}
	c, err := oc.Approvals(org.ID)
	if err != nil || c.Settings.MaxPending != 1 || c.SettingsVersion != 1 {
		t.Fatalf("after PUT settings: %+v, %v", c, err)
	}
	if _, _, err := db.CreateOrg("other", nil); err != nil {
		t.Fatal(err)
	}
	if d, _ := oc.Approvals(org.ID); d != c {
		t.Fatal("another organization's change recompiled this one")
	}
	if _, err := db.PutOrgDocument(org.ID, store.DocSettings, []byte(`{"approvals":{"maxPending":99}}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := oc.Approvals(org.ID); err == nil {
		t.Fatal("a stored document that does not validate was compiled")
	}
	if _, err := oc.Approvals(store.OrgID{1}); err == nil {
		t.Fatal("an unknown organization has approvals")
	}
}

// TestApprovalsConcurrentPut: lookups racing PUTs always see a compiled
// configuration, and after the last PUT the last version.
func TestApprovalsConcurrentPut(t *testing.T) {
	db := openStore(t)
	org, _, err := db.CreateOrg("acme", nil)
	if err != nil {
		t.Fatal(err)
	}
	oc := NewCache(db, 4)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 20; i++ {
			if _, err := db.PutOrgDocument(org.ID, store.DocSettings, []byte(`{"approvals":{"maxPending":2}}`)); err != nil {
				t.Error(err)
			}
		}
	}()
	for i := 0; i < 200; i++ {
		if a, err := oc.Approvals(org.ID); err != nil || a == nil {
			t.Fatalf("lookup during PUTs: %v", err)
		}
	}
	<-done
	if a, err := oc.Approvals(org.ID); err != nil || a.SettingsVersion != 20 || a.Settings.MaxPending != 2 {
		t.Fatalf("after the PUTs: %+v, %v", a, err)
	}
}
