//go:build !race

package tenant

import "testing"

// TestApprovalsNoAlloc: the request path's lookup of a compiled
// configuration allocates nothing.
func TestApprovalsNoAlloc(t *testing.T) {
	db := openStore(t)
	org, _, err := db.CreateOrg("acme", nil)
	if err != nil {
		t.Fatal(err)
	}
	oc := NewCache(db, 4)
	if _, err := oc.Approvals(org.ID); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(100, func() { _, _ = oc.Approvals(org.ID) }); n != 0 {
		t.Fatalf("%v allocations per lookup", n)
	}
}
