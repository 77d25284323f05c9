package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

var decisionIDRE = regexp.MustCompile(`^[0-7][0-9A-HJKMNP-TV-Z]{25}$`)

func TestDecisionIDVectors(t *testing.T) {
	for _, c := range []struct {
		b    [16]byte
		want string
	}{
		{[16]byte{}, "00000000000000000000000000"},
		{[16]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, "7ZZZZZZZZZZZZZZZZZZZZZZZZZ"},
		// The ULID specification's example: 01ARZ3NDEKTSV4RRFFQ69G5FAV.
		{[16]byte{0x01, 0x56, 0x3e, 0x3a, 0xb5, 0xd3, 0xd6, 0x76, 0x4c, 0x61, 0xef, 0xb9, 0x93, 0x02, 0xbd, 0x5b}, "01ARZ3NDEKTSV4RRFFQ69G5FAV"},
		{[16]byte{15: 1}, "00000000000000000000000001"},
		{[16]byte{15: 32}, "00000000000000000000000010"},
	} {
		if got := string(appendDecisionID(nil, &c.b)); got != c.want {
			t.Errorf("%x: %s, want %s", c.b, got, c.want)
		}
	}
}

func TestNewDecisionID(t *testing.T) {
	db, c := openMem(t)
	var ids []string
	seen := map[string]bool{}
	for i := 0; i < 100; i++ {
		id := db.NewDecisionID()
		if !decisionIDRE.MatchString(id) || seen[id] {
			t.Fatalf("id %q (repeat: %v)", id, seen[id])
		}
		seen[id] = true
		ids = append(ids, id)
		c.Advance(time.Millisecond)
	}
	if !sort.StringsAreSorted(ids) {
		t.Fatal("ids of later milliseconds do not sort later")
	}
	// The first 10 characters are the timestamp.
	db2, _ := openMem(t)
	if a, b := db.NewDecisionID(), db2.NewDecisionID(); a[:10] == b[:10] {
		t.Fatalf("%s and %s share a timestamp 100ms apart", a, b)
	}
}

func TestDecisions(t *testing.T) {
	db, c := openMem(t)
	o, _ := newOrg(t, db, "acme")
	d := Decision{ID: db.NewDecisionID(), OrgID: o.ID, CSID: "csid-0001", UserID: "u", CreatedAt: c.Now().UnixMilli(),
		Verified: false, Score: -5, Response: []byte("{\"success\":true,\n \"ivScore\":2000}  ")}
	check(t, db.PutDecision(&d, nil, [32]byte{}))
	got := must[Decision](t)(db.Decision(o.ID, d.ID))
	if fmt.Sprint(got) != fmt.Sprint(d) {
		t.Fatalf("decision %+v, want %+v", got, d)
	}
	_, _, err := db.Idempotent(o.ID, []byte("k"))
	wantErr(t, err, ErrNotFound)
	_, err = db.Decision(o.ID, "01ARZ3NDEKTSV4RRFFQ69G5FAV")
	wantErr(t, err, ErrNotFound)

	// With an idempotency key: both records, one batch; the key is taken once.
	d2 := d
	d2.ID, d2.Verified, d2.Score = db.NewDecisionID(), true, 9000
	hash := [32]byte{1, 2, 3}
	check(t, db.PutDecision(&d2, []byte("idem-1"), hash))
	got, h, err := db.Idempotent(o.ID, []byte("idem-1"))
	check(t, err)
	if fmt.Sprint(got) != fmt.Sprint(d2) || h != hash {
		t.Fatalf("idempotent %+v %x", got, h)
	}
	d3 := d2
	d3.ID = db.NewDecisionID()
	wantErr(t, db.PutDecision(&d3, []byte("idem-1"), [32]byte{4}), ErrExists)
	_, err = db.Decision(o.ID, d3.ID)
	wantErr(t, err, ErrNotFound) // nothing of the losing request was stored

	// Guards.
	wantErr(t, db.PutDecision(&Decision{OrgID: o.ID}, nil, hash), ErrEmptyID)
	wantErr(t, db.PutDecision(&Decision{OrgID: "x", ID: "1"}, nil, hash), ErrNotFound)
	wantErr(t, db.PutDecision(&Decision{OrgID: o.ID, ID: "1"}, make([]byte, MaxKeyBytes+1), hash), ErrKeyTooLong)
	wantErr(t, db.PutDecision(&Decision{OrgID: o.ID, ID: "1", Response: make([]byte, MaxValueBytes+1)}, nil, hash), ErrTooLarge)
}

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

func TestTemplates(t *testing.T) {
	db, _ := openMem(t)
	o, _ := newOrg(t, db, "acme")
	_, err := db.Template(o.ID, "u")
	wantErr(t, err, ErrNotFound)
	check(t, db.PutTemplate(o.ID, "u", []byte("v1")))
	check(t, db.PutTemplate(o.ID, "u2", []byte{}))
	check(t, db.PutTemplate(o.ID, "u", []byte("v2")))
	if got := must[[]byte](t)(db.Template(o.ID, "u")); string(got) != "v2" {
		t.Fatalf("template %q", got)
	}
	if got := must[[]byte](t)(db.Template(o.ID, "u2")); got == nil || len(got) != 0 {
		t.Fatalf("empty template %q", got)
	}
	check(t, db.DeleteTemplate(o.ID, "u"))
	_, err = db.Template(o.ID, "u")
	wantErr(t, err, ErrNotFound)
	wantErr(t, db.DeleteTemplate(o.ID, "u"), ErrNotFound)
	wantErr(t, db.PutTemplate(o.ID, "", nil), ErrEmptyID)
	wantErr(t, db.PutTemplate(o.ID, string(make([]byte, MaxKeyBytes+1)), nil), ErrKeyTooLong)
	wantErr(t, db.PutTemplate(o.ID, "u", make([]byte, MaxValueBytes+1)), ErrTooLarge)
	wantErr(t, db.PutTemplate("nope", "u", nil), ErrNotFound)
}

// TestTenancy: every record of one organization is invisible to another,
// answered exactly like a record that does not exist, for reads and writes.
func TestTenancy(t *testing.T) {
	db, err := Open(Options{Dir: "db", FS: vfs.NewMem()})
	check(t, err)
	defer db.Close()
	f := writeFixture(t, db)
	evil, _ := newOrg(t, db, "evil")
	id, csid := evil.ID, f.sess.CSID

	notFound := map[string]error{}
	_, notFound["Session"] = db.Session(id, csid)
	_, notFound["AppendEvents"] = db.AppendEvents(id, csid, []FieldValue{{Key: []byte("amount"), Value: []byte("1")}}, [][]byte{{1}}, true)
	_, notFound["Fields"] = db.Fields(id, csid, nil)
	notFound["Frames"] = db.Frames(id, csid, 0, func(uint32, []byte) error { return nil })
	notFound["SaveAggregate"] = db.SaveAggregate(id, csid, []byte("x"), 0)
	_, notFound["Decision"] = db.Decision(id, f.dec.ID)
	_, _, notFound["Idempotent"] = db.Idempotent(id, f.idem)
	_, notFound["Template"] = db.Template(id, "user-1")
	notFound["DeleteTemplate"] = db.DeleteTemplate(id, "user-1")
	for name, err := range notFound {
		if !errors.Is(err, ErrNotFound) {
			t.Errorf("%s across organizations: %v, want ErrNotFound", name, err)
		}
	}
	// Writes of the other organization landed in its own space only.
	check(t, db.PutTemplate(id, "user-1", []byte("evil")))
	d := f.dec
	d.OrgID = id
	check(t, db.PutDecision(&d, f.idem, [32]byte{}))
	newSession(t, db, id, csid)

	f.verify(t, db)
	if tm := must[[]byte](t)(db.Template(id, "user-1")); !bytes.Equal(tm, []byte("evil")) {
		t.Fatalf("evil template %q", tm)
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

// TestDecisionIDTime: an id carries the millisecond it was made at.
func TestDecisionIDTime(t *testing.T) {
	db, clk := openMem(t)
	for range 3 {
		id := db.NewDecisionID()
		if ms, ok := decisionIDTime(id); !ok || ms != clk.Now().UnixMilli() {
			t.Fatalf("%s: %d %v, want %d", id, ms, ok, clk.Now().UnixMilli())
		}
		clk.Advance(1234567 * time.Millisecond)
	}
	for _, id := range []string{"", "dec-1", "01KAQ4ZQ5W8Y7V3N2M1K0J9H8", "01KAQ4ZQ5W8Y7V3N2M1K0J9H8g", "0IKAQ4ZQ5W8Y7V3N2M1K0J9H8G", "81KAQ4ZQ5W8Y7V3N2M1K0J9H8G"} {
		if _, ok := decisionIDTime(id); ok {
			t.Errorf("%q read as a decision id", id)
		}
	}
}

// A store's ids rise strictly: within one millisecond, when the clock steps
// back, and past the last value of the 80 bits.
func TestDecisionIDsRiseStrictly(t *testing.T) {
	db, c := openMem(t)
	var ids []string
	for i := 0; i < 1000; i++ {
		ids = append(ids, db.NewDecisionID())
	}
	c.Advance(-5 * time.Millisecond)
	ids = append(ids, db.NewDecisionID(), db.NewDecisionID())
	c.Advance(10 * time.Millisecond)
	ids = append(ids, db.NewDecisionID())
	for i := 1; i < len(ids); i++ {
		if ids[i] <= ids[i-1] {
			t.Fatalf("id %d %s after %s", i, ids[i], ids[i-1])
		}
		if !decisionIDRE.MatchString(ids[i]) {
			t.Fatalf("id %q", ids[i])
		}
	}
	// One millisecond's ids (and the clock's step back) share its time.
	for _, id := range ids[1:1002] {
		if id[:10] != ids[0][:10] {
			t.Fatalf("%s is not of %s's millisecond", id, ids[0])
		}
	}
	if ids[1002][:10] == ids[0][:10] {
		t.Fatalf("%s has the time of 5 ms before", ids[1002])
	}
	// The first id of a later millisecond draws new bits, so one id does
	// not tell the next millisecond's.
	if ids[1002][10:] == ids[1001][10:] {
		t.Fatal("a new millisecond reused the random bits")
	}

	// Past the last 80-bit value the id moves to the next millisecond.
	var ck idClock
	ones := func(p []byte) error {
		for i := range p {
			p[i] = 0xff
		}
		return nil
	}
	var a, b [16]byte
	check(t, ck.next(1000, &a, ones))
	check(t, ck.next(1000, &b, ones))
	if x, y := appendDecisionID(nil, &a), appendDecisionID(nil, &b); string(y) <= string(x) || binary.BigEndian.Uint16(b[4:6]) != 1001 {
		t.Fatalf("after %s: %s (%x)", x, y, b)
	}
	// A failing source of randomness is reported, not papered over, and
	// leaves the clock as it was: here it fails in the wrap to the next
	// millisecond, after which the next id must still rise.
	fail := func([]byte) error { return errors.New("no entropy") }
	var ck2 idClock
	if err := ck2.next(1, &a, fail); err == nil {
		t.Fatal("a failed random read made an id")
	}
	var c0, c1, c2 [16]byte
	check(t, ck2.next(7, &c0, ones))
	if err := ck2.next(7, &c1, fail); err == nil {
		t.Fatal("the wrap made an id without random bits")
	}
	check(t, ck2.next(7, &c2, ones))
	if x, y := appendDecisionID(nil, &c0), appendDecisionID(nil, &c2); string(y) <= string(x) {
		t.Fatalf("after a failed wrap: %s after %s", y, x)
	}

	// A step back of more than a second restarts at the clock's time, so
	// one reading far ahead does not date the ids that follow it.
	msOf := func(b *[16]byte) uint64 { return binary.BigEndian.Uint64(append([]byte{0, 0}, b[:6]...)) }
	zeros := func(p []byte) error { clear(p); return nil }
	var ck3 idClock
	check(t, ck3.next(100_000, &a, zeros))
	check(t, ck3.next(100_000-maxIDClockBack, &b, zeros))
	if msOf(&b) != 100_000 {
		t.Fatalf("a step back of a second moved the time to %d", msOf(&b))
	}
	check(t, ck3.next(100_000-maxIDClockBack-1, &b, zeros))
	if got := msOf(&b); got != 100_000-maxIDClockBack-1 {
		t.Fatalf("after a larger step back the id's time is %d", got)
	}
}
