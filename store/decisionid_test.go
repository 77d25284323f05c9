package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"
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

func TestAssignDecisionID(t *testing.T) {
	db, c := openMem(t)
	o, _ := newOrg(t, db, "acme")
	d := Decision{OrgID: o.ID, CSID: "csid-1", UserID: "user-1", CreatedAt: 1, Score: 2000, Response: []byte(`{}`)}
	db.AssignDecisionID(&d)
	if !decisionIDRE.MatchString(d.ID) {
		t.Fatalf("id %q", d.ID)
	}
	first := strings.Clone(d.ID)
	check(t, db.PutDecision(&d, nil, [32]byte{}))
	got := must[Decision](t)(db.Decision(o.ID, first))
	if got.ID != first || string(got.Response) != `{}` {
		t.Fatalf("read back %+v", got)
	}
	// Ids sort by time, and the next id replaces the first in d.
	c.Advance(time.Millisecond)
	db.AssignDecisionID(&d)
	if d.ID <= first {
		t.Fatalf("second id %q not after %q", d.ID, first)
	}
	if !bytes.HasPrefix(db.AppendDecisionID([]byte("x")), []byte("x")) {
		t.Fatal("AppendDecisionID does not append")
	}
}
