package store

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// TestIdempotencyRace: of many concurrent requests with one key, exactly one
// is stored and the rest are told so.
func TestIdempotencyRace(t *testing.T) {
	db, _ := openMem(t)
	o, _ := newOrg(t, db, "acme")
	var wg sync.WaitGroup
	var mu sync.Mutex
	won, lost := 0, 0
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := Decision{ID: db.NewDecisionID(), OrgID: o.ID}
			err := db.PutDecision(&d, []byte("same"), [32]byte{byte(i)})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				won++
			case errors.Is(err, ErrExists):
				lost++
			default:
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if won != 1 || lost != 15 {
		t.Fatalf("won %d lost %d", won, lost)
	}
}

// idemKeys counts the idempotency records and expiry entries stored.
func idemKeys(t *testing.T, db *DB) (records, entries int) {
	t.Helper()
	for _, kind := range []byte{kindIdempotency, kindIdemExpiry} {
		it, err := db.pdb.NewIter(&pebble.IterOptions{LowerBound: []byte{kind}, UpperBound: []byte{kind + 1}})
		check(t, err)
		for it.First(); it.Valid(); it.Next() {
			if kind == kindIdempotency {
				records++
			} else {
				entries++
			}
		}
		check(t, it.Close())
	}
	return records, entries
}

// TestIdempotencyTTL: a key is remembered for the TTL after its decision,
// then it is free for a new decision (the old one stays readable by id),
// and the sweep deletes its record once it has expired.
func TestIdempotencyTTL(t *testing.T) {
	db, clk := openMem(t)
	o, _ := newOrg(t, db, "acme")
	put := func(key string) (Decision, error) {
		d := Decision{OrgID: o.ID, CSID: "c", UserID: "u", Response: []byte("r")}
		db.AssignDecisionID(&d)
		d.ID = strings.Clone(d.ID)
		return d, db.PutDecision(&d, []byte(key), [32]byte{1})
	}
	d1, err := put("k")
	check(t, err)
	if got, _, err := db.Idempotent(o.ID, []byte("k")); err != nil || got.ID != d1.ID {
		t.Fatalf("within the TTL: %v %v", got.ID, err)
	}
	clk.Advance(DefaultIdempotencyTTL - time.Second)
	if _, err := put("k"); !errors.Is(err, ErrExists) {
		t.Fatalf("reuse within the TTL: %v", err)
	}
	if n, _ := db.SweepIdempotency(0); n != 0 {
		t.Fatalf("swept %d keys before they expired", n)
	}
	clk.Advance(time.Second)
	wantErr(t, func() error { _, _, err := db.Idempotent(o.ID, []byte("k")); return err }(), ErrNotFound)
	if _, err := db.Decision(o.ID, d1.ID); err != nil {
		t.Fatalf("the decision of an expired key: %v", err)
	}
	d2, err := put("k") // free again: a new decision
	check(t, err)
	if got, _, err := db.Idempotent(o.ID, []byte("k")); err != nil || got.ID != d2.ID {
		t.Fatalf("after reuse: %v %v", got.ID, err)
	}
	// d1's entry is due but the record is d2's now: kept, entry dropped.
	if n, err := db.SweepIdempotency(0); n != 0 || err != nil {
		t.Fatalf("swept %d, %v: the key is in use again", n, err)
	}
	if r, e := idemKeys(t, db); r != 1 || e != 1 {
		t.Fatalf("%d records and %d entries, want 1 and 1", r, e)
	}
	clk.Advance(DefaultIdempotencyTTL)
	if n, err := db.SweepIdempotency(0); n != 1 || err != nil {
		t.Fatalf("swept %d, %v: want the expired key", n, err)
	}
	if r, e := idemKeys(t, db); r != 0 || e != 0 {
		t.Fatalf("%d records and %d entries left after the sweep", r, e)
	}

	// A TTL raised after the key was used: its entry comes due early, the
	// record stays and gets an entry at its real expiry.
	_, err = put("raised")
	check(t, err)
	db.idemTTL = 2 * DefaultIdempotencyTTL
	clk.Advance(DefaultIdempotencyTTL + time.Second)
	if n, err := db.SweepIdempotency(0); n != 0 || err != nil {
		t.Fatalf("swept %d, %v before the raised TTL", n, err)
	}
	if _, _, err := db.Idempotent(o.ID, []byte("raised")); err != nil {
		t.Fatalf("within the raised TTL: %v", err)
	}
	clk.Advance(DefaultIdempotencyTTL)
	if n, err := db.SweepIdempotency(0); n != 1 || err != nil {
		t.Fatalf("swept %d, %v after the raised TTL", n, err)
	}

	// No TTL: nothing expires and no entry is written.
	db.idemTTL = 0
	_, err = put("forever")
	check(t, err)
	clk.Advance(365 * 24 * time.Hour)
	if _, _, err := db.Idempotent(o.ID, []byte("forever")); err != nil {
		t.Fatalf("without a TTL: %v", err)
	}
	if r, e := idemKeys(t, db); r != 1 || e != 0 {
		t.Fatalf("without a TTL: %d records and %d entries, want 1 and 0", r, e)
	}
}

// TestIdempotencyTTLOption: Options.IdempotencyTTL, its default and "never".
func TestIdempotencyTTLOption(t *testing.T) {
	for _, c := range []struct {
		opt, want time.Duration
	}{{0, DefaultIdempotencyTTL}, {time.Hour, time.Hour}, {-1, 0}} {
		db, err := Open(Options{Dir: "db", FS: vfs.NewMem(), IdempotencyTTL: c.opt})
		check(t, err)
		if db.idemTTL != c.want {
			t.Errorf("IdempotencyTTL %v: %v, want %v", c.opt, db.idemTTL, c.want)
		}
		check(t, db.Close())
	}
}
