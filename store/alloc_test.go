//go:build !race

package store

import "testing"

// TestAllocations pins what the per-request store calls allocate. Reads
// must return strings the caller keeps, so they cannot be zero; everything
// else (keys, scratch, Pebble's iterators) is pooled.
func TestAllocations(t *testing.T) {
	db, _ := openMem(t)
	o, _ := newOrg(t, db, "acme")
	s, token, err := db.CreateSession(o.ID, "csid-allocs", "user-12345", "wire-transfer")
	check(t, err)
	check(t, db.SaveAggregate(o.ID, "csid-allocs", []byte("aggregate"), 0))
	dst := Session{Aggregate: make([]byte, 0, 64)}
	tok := []byte(token)

	for _, c := range []struct {
		name string
		max  float64
		fn   func()
	}{
		// UserID and Action; the aggregate goes into dst's buffer.
		{"SessionInto", 2, func() {
			if err := db.SessionInto(o.ID, "csid-allocs", &dst); err != nil {
				t.Fatal(err)
			}
		}},
		{"CheckCollectToken", 0, func() {
			if !db.CheckCollectToken(&s, tok) {
				t.Fatal("token")
			}
		}},
		{"NewDecisionID", 1, func() { _ = db.NewDecisionID() }}, // the id string
	} {
		if n := testing.AllocsPerRun(200, c.fn); n > c.max {
			t.Errorf("%s: %.1f allocs per call, want <= %.0f", c.name, n, c.max)
		}
	}
}
