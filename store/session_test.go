package store

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand/v2"
	"regexp"
	"sync"
	"testing"
	"time"
)

var collectTokenRE = regexp.MustCompile(`^cst_[A-Za-z0-9_-]{43}$`)

func TestCreateSession(t *testing.T) {
	db, c := openMem(t)
	o, _ := newOrg(t, db, "acme")
	s, token, err := db.CreateSession(o.ID, "csid-0001", "user-1", "wire")
	check(t, err)
	if !collectTokenRE.MatchString(token) {
		t.Fatalf("token %q", token)
	}
	now := c.Now().UnixMilli()
	want := Session{OrgID: o.ID, CSID: "csid-0001", UserID: "user-1", Action: "wire",
		CollectTokenHash: sha256.Sum256([]byte(token)), CreatedAt: now, ExpiresAt: now + DefaultSessionTTL.Milliseconds()}
	if fmt.Sprint(s) != fmt.Sprint(want) {
		t.Fatalf("created %+v, want %+v", s, want)
	}
	got := must[Session](t)(db.Session(o.ID, "csid-0001"))
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("read %+v, want %+v", got, want)
	}
	if rawContains(t, db, []byte(token)) {
		t.Fatal("collect token stored in clear")
	}

	if !db.CheckCollectToken(&got, []byte(token)) {
		t.Fatal("token rejected")
	}
	forged := []byte(token)
	forged[20] ^= 1
	for _, bad := range [][]byte{nil, forged, []byte(token[:40]), []byte("csk_" + token[4:])} {
		if db.CheckCollectToken(&got, bad) {
			t.Fatalf("forged token %q accepted", bad)
		}
	}
	if db.CheckCollectToken(&Session{}, []byte(token)) {
		t.Fatal("token accepted by a zero session")
	}

	// Unknown org; bad ids.
	_, _, err = db.CreateSession("0000000000000000", "csid-0002", "u", "a")
	wantErr(t, err, ErrNotFound)
	_, _, err = db.CreateSession(o.ID, "", "u", "a")
	wantErr(t, err, ErrEmptyID)
	_, _, err = db.CreateSession(o.ID, string(make([]byte, MaxKeyBytes+1)), "u", "a")
	wantErr(t, err, ErrKeyTooLong)
	_, err = db.Session(o.ID, "csid-none")
	wantErr(t, err, ErrNotFound)
}

func TestCSIDReuse(t *testing.T) {
	db, c := openMem(t)
	o, _ := newOrg(t, db, "acme")
	other, _ := newOrg(t, db, "globex")
	newSession(t, db, o.ID, "csid-0001")
	must[uint32](t)(db.AppendEvents(o.ID, "csid-0001", []FieldValue{{Key: []byte("k"), Value: []byte("1")}}, [][]byte{[]byte("f")}, false))

	_, _, err := db.CreateSession(o.ID, "csid-0001", "u", "a")
	wantErr(t, err, ErrExists)
	// csids are unique per organization: another org may use the same one.
	newSession(t, db, other.ID, "csid-0001")

	c.Advance(DefaultSessionTTL)
	_, _, err = db.CreateSession(o.ID, "csid-0001", "u", "a")
	wantErr(t, err, ErrExists)

	if n := must[int](t)(db.SweepExpired(0)); n != 2 {
		t.Fatalf("swept %d, want 2", n)
	}
	_, _, err = db.CreateSession(o.ID, "csid-0001", "u", "a")
	wantErr(t, err, ErrExists)
	_, err = db.Session(o.ID, "csid-0001")
	wantErr(t, err, ErrExpired)
}

func TestExpiryOnRead(t *testing.T) {
	c := newClock()
	db, err := Open(Options{Dir: t.TempDir(), Now: c.Now, SessionTTL: time.Minute})
	check(t, err)
	defer db.Close()
	o, _ := newOrg(t, db, "acme")
	s, _ := newSession(t, db, o.ID, "csid-0001")
	if s.ExpiresAt != s.CreatedAt+time.Minute.Milliseconds() {
		t.Fatalf("ExpiresAt %d CreatedAt %d", s.ExpiresAt, s.CreatedAt)
	}
	c.Advance(time.Minute - time.Millisecond)
	must[Session](t)(db.Session(o.ID, "csid-0001"))
	must[uint32](t)(db.AppendEvents(o.ID, "csid-0001", nil, [][]byte{[]byte("f")}, false))

	c.Advance(time.Millisecond) // now == ExpiresAt: expired
	_, err = db.Session(o.ID, "csid-0001")
	wantErr(t, err, ErrExpired)
	_, err = db.AppendEvents(o.ID, "csid-0001", nil, [][]byte{[]byte("f")}, false)
	wantErr(t, err, ErrExpired)
	_, err = db.Fields(o.ID, "csid-0001", nil)
	wantErr(t, err, ErrExpired)
	wantErr(t, db.Frames(o.ID, "csid-0001", 0, func(uint32, []byte) error { return nil }), ErrExpired)
	wantErr(t, db.SaveAggregate(o.ID, "csid-0001", nil, 1), ErrExpired)

	// Nothing was swept: expiry is a property of reading, not of the sweep.
	if countKind(t, db, kindFrame) != 1 {
		t.Fatal("frame gone before the sweep")
	}
}

func TestAppendEventsFields(t *testing.T) {
	db, _ := openMem(t)
	o, _ := newOrg(t, db, "acme")
	newSession(t, db, o.ID, "csid-0001")
	fv := func(k, v string, ts int64) FieldValue { return FieldValue{Key: []byte(k), Value: []byte(v), TS: ts} }

	must[uint32](t)(db.AppendEvents(o.ID, "csid-0001", []FieldValue{
		fv("total", `"35.00"`, 1), fv("Total", `"1"`, 1), fv("payee", `6`, 2), fv("total", `"36.00"`, 3),
	}, nil, false))
	must[uint32](t)(db.AppendEvents(o.ID, "csid-0001", []FieldValue{fv("payee", `7`, 4), fv("notes", `null`, 5)}, nil, false))

	got := must[[]FieldValue](t)(db.Fields(o.ID, "csid-0001", nil))
	want := []FieldValue{fv("Total", `"1"`, 1), fv("notes", `null`, 5), fv("payee", `7`, 4), fv("total", `"36.00"`, 3)}
	if fmtFields(got) != fmtFields(want) {
		t.Fatalf("fields = %s\nwant     %s", fmtFields(got), fmtFields(want))
	}
	// Copies are independent: appending to one does not touch its neighbour.
	got[0].Key = append(got[0].Key, "XX"...)
	if string(got[0].Value) != `"1"` {
		t.Fatalf("arena copies overlap: %s", fmtFields(got))
	}
	// dst is appended to.
	two := must[[]FieldValue](t)(db.Fields(o.ID, "csid-0001", want[:1:1]))
	if len(two) != 5 || string(two[1].Key) != "Total" {
		t.Fatalf("append to dst: %s", fmtFields(two))
	}

	s := must[Session](t)(db.Session(o.ID, "csid-0001"))
	if s.FramesReceived != 0 || s.Final {
		t.Fatalf("session %+v", s)
	}
	// final alone is a change; it stays set.
	must[uint32](t)(db.AppendEvents(o.ID, "csid-0001", nil, nil, true))
	must[uint32](t)(db.AppendEvents(o.ID, "csid-0001", []FieldValue{fv("x", "1", 6)}, nil, false))
	if s := must[Session](t)(db.Session(o.ID, "csid-0001")); !s.Final {
		t.Fatal("final not sticky")
	}

	// Guards.
	_, err := db.AppendEvents(o.ID, "csid-0001", []FieldValue{fv("", "1", 0)}, nil, false)
	wantErr(t, err, ErrEmptyID)
	_, err = db.AppendEvents(o.ID, "csid-0001", []FieldValue{{Key: make([]byte, MaxKeyBytes+1), Value: []byte("1")}}, nil, false)
	wantErr(t, err, ErrKeyTooLong)
	_, err = db.AppendEvents(o.ID, "csid-0001", []FieldValue{{Key: []byte("k"), Value: make([]byte, MaxValueBytes+1)}}, nil, false)
	wantErr(t, err, ErrTooLarge)
	_, err = db.AppendEvents(o.ID, "csid-0001", nil, [][]byte{make([]byte, MaxFrameBytes+1)}, false)
	wantErr(t, err, ErrTooLarge)
	_, err = db.AppendEvents(o.ID, "csid-none", nil, [][]byte{[]byte("f")}, false)
	wantErr(t, err, ErrNotFound)
}

func TestFramesRoundTrip(t *testing.T) {
	db, _ := openMem(t)
	o, _ := newOrg(t, db, "acme")
	newSession(t, db, o.ID, "csid-0001")
	rng := rand.New(rand.NewPCG(1, 2))
	var want [][]byte
	for post := 0; post < 5; post++ {
		var frames [][]byte
		for i := 0; i < post; i++ {
			f := make([]byte, 2048+rng.IntN(2048)) // a 512-d embedding plus header: incompressible
			for j := range f {
				f[j] = byte(rng.Uint32())
			}
			if i%2 == 1 {
				f = bytes.Repeat([]byte{byte(post)}, 3000) // compressible
			}
			frames = append(frames, f)
		}
		first := must[uint32](t)(db.AppendEvents(o.ID, "csid-0001", nil, frames, false))
		if int(first) != len(want) {
			t.Fatalf("first index %d, want %d", first, len(want))
		}
		want = append(want, frames...)
	}
	want = append(want, make([]byte, MaxFrameBytes)) // the largest allowed frame
	must[uint32](t)(db.AppendEvents(o.ID, "csid-0001", nil, want[len(want)-1:], false))

	for _, from := range []uint32{0, 3, uint32(len(want) - 1), uint32(len(want)), 1000} {
		next := from
		check(t, db.Frames(o.ID, "csid-0001", from, func(i uint32, raw []byte) error {
			if i != next || !bytes.Equal(raw, want[i]) {
				t.Fatalf("from %d: frame %d (want %d) differs", from, i, next)
			}
			next++
			return nil
		}))
		if int(next) < len(want) && from < uint32(len(want)) {
			t.Fatalf("from %d: stopped at %d of %d", from, next, len(want))
		}
	}
	stop := errors.New("stop")
	n := 0
	err := db.Frames(o.ID, "csid-0001", 0, func(uint32, []byte) error { n++; return stop })
	if !errors.Is(err, stop) || n != 1 {
		t.Fatalf("callback error: %v after %d", err, n)
	}
	if s := must[Session](t)(db.Session(o.ID, "csid-0001")); int(s.FramesReceived) != len(want) || s.Pending() != s.FramesReceived {
		t.Fatalf("session %+v", s)
	}
}

// TestConcurrentAppendEvents: many goroutines posting to one session at
// once lose no count and share no index.
func TestConcurrentAppendEvents(t *testing.T) {
	db, _ := openMem(t)
	o, _ := newOrg(t, db, "acme")
	newSession(t, db, o.ID, "csid-0001")
	const workers, posts = 16, 20
	var wg sync.WaitGroup
	errs := make(chan error, workers*posts)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := 0; p < posts; p++ {
				frames := [][]byte{fmt.Appendf(nil, "w%d-p%d-a", w, p), fmt.Appendf(nil, "w%d-p%d-b", w, p)}
				fields := []FieldValue{{Key: fmt.Appendf(nil, "w%d", w), Value: fmt.Appendf(nil, "%d", p)}}
				first, err := db.AppendEvents(o.ID, "csid-0001", fields, frames, false)
				if err != nil {
					errs <- err
					return
				}
				if first%2 != 0 {
					errs <- fmt.Errorf("first index %d splits a post", first)
				}
			}
		}()
	}
	// Meanwhile a scorer saves aggregates, also a read-modify-write.
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < posts; i++ {
			s, err := db.Session(o.ID, "csid-0001")
			if err == nil {
				err = db.SaveAggregate(o.ID, "csid-0001", []byte("agg"), s.FramesReceived)
			}
			if err != nil && !errors.Is(err, ErrStale) {
				errs <- err
				return
			}
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	s := must[Session](t)(db.Session(o.ID, "csid-0001"))
	if s.FramesReceived != workers*posts*2 {
		t.Fatalf("FramesReceived = %d, want %d", s.FramesReceived, workers*posts*2)
	}
	seen := map[string]bool{}
	next := uint32(0)
	check(t, db.Frames(o.ID, "csid-0001", 0, func(i uint32, raw []byte) error {
		if i != next {
			t.Fatalf("index %d, want %d", i, next)
		}
		next++
		// A post's two frames are adjacent.
		if i%2 == 1 && !seen[string(raw[:len(raw)-1])+"a"] {
			t.Fatalf("frame %d %q not after its pair", i, raw)
		}
		seen[string(raw)] = true
		return nil
	}))
	if len(seen) != workers*posts*2 {
		t.Fatalf("%d distinct frames", len(seen))
	}
	fields := must[[]FieldValue](t)(db.Fields(o.ID, "csid-0001", nil))
	if len(fields) != workers {
		t.Fatalf("%d fields", len(fields))
	}
	for _, f := range fields {
		if string(f.Value) != fmt.Sprint(posts-1) {
			t.Fatalf("field %s = %s, want the last post's", f.Key, f.Value)
		}
	}
}

func TestSaveAggregate(t *testing.T) {
	db, _ := openMem(t)
	o, _ := newOrg(t, db, "acme")
	newSession(t, db, o.ID, "csid-0001")
	must[uint32](t)(db.AppendEvents(o.ID, "csid-0001", nil, [][]byte{{1}, {2}, {3}}, false))

	wantErr(t, db.SaveAggregate(o.ID, "csid-0001", []byte("a4"), 4), ErrUnreceived)
	check(t, db.SaveAggregate(o.ID, "csid-0001", []byte("a2"), 2))
	wantErr(t, db.SaveAggregate(o.ID, "csid-0001", []byte("a1"), 1), ErrStale)
	check(t, db.SaveAggregate(o.ID, "csid-0001", []byte("a2 rescored"), 2)) // equal: a rescore replaces
	s := must[Session](t)(db.Session(o.ID, "csid-0001"))
	if s.FramesScored != 2 || string(s.Aggregate) != "a2 rescored" || s.Pending() != 1 {
		t.Fatalf("session %+v", s)
	}
	check(t, db.SaveAggregate(o.ID, "csid-0001", []byte("a3"), 3))
	// SessionInto reuses the caller's aggregate buffer.
	buf := make([]byte, 0, 64)
	dst := Session{Aggregate: buf}
	check(t, db.SessionInto(o.ID, "csid-0001", &dst))
	if string(dst.Aggregate) != "a3" || &dst.Aggregate[:1][0] != &buf[:1][0] || dst.FramesScored != 3 {
		t.Fatalf("SessionInto %+v", dst)
	}
	// The aggregate survives later events (they rewrite the session record).
	must[uint32](t)(db.AppendEvents(o.ID, "csid-0001", nil, [][]byte{{4}}, false))
	if s := must[Session](t)(db.Session(o.ID, "csid-0001")); string(s.Aggregate) != "a3" || s.FramesReceived != 4 {
		t.Fatalf("session %+v", s)
	}
	wantErr(t, db.SaveAggregate(o.ID, "csid-0001", make([]byte, MaxValueBytes+1), 4), ErrTooLarge)
	wantErr(t, db.SaveAggregate(o.ID, "csid-none", nil, 0), ErrNotFound)
}

func TestSweepExpired(t *testing.T) {
	db, c := openMem(t)
	o, _ := newOrg(t, db, "acme")
	post := func(csid string) {
		t.Helper()
		must[uint32](t)(db.AppendEvents(o.ID, csid, []FieldValue{{Key: []byte("a"), Value: []byte("1")}, {Key: []byte("b"), Value: []byte("2")}},
			[][]byte{[]byte("f0"), []byte("f1")}, false))
		check(t, db.SaveAggregate(o.ID, csid, []byte("agg"), 1))
	}
	for i := 0; i < 5; i++ {
		newSession(t, db, o.ID, fmt.Sprintf("old-%04d", i))
		post(fmt.Sprintf("old-%04d", i))
	}
	c.Advance(DefaultSessionTTL / 2)
	newSession(t, db, o.ID, "young-0001")
	post("young-0001")
	if n := must[int](t)(db.SweepExpired(0)); n != 0 {
		t.Fatalf("swept %d live sessions", n)
	}

	c.Advance(DefaultSessionTTL / 2) // the old ones expire, the young one does not
	if n := must[int](t)(db.SweepExpired(2)); n != 2 {
		t.Fatalf("limit 2: swept %d", n)
	}
	if n := must[int](t)(db.SweepExpired(0)); n != 3 {
		t.Fatalf("rest: swept %d", n)
	}
	if n := must[int](t)(db.SweepExpired(0)); n != 0 {
		t.Fatalf("again: swept %d", n)
	}
	// Only the young session's records remain; every csid is still taken.
	if f, fr, e, s := countKind(t, db, kindField), countKind(t, db, kindFrame), countKind(t, db, kindExpiry), countKind(t, db, kindSession); f != 2 || fr != 2 || e != 1 || s != 6 {
		t.Fatalf("after sweep: %d fields, %d frames, %d expiry entries, %d session records", f, fr, e, s)
	}
	if countAggregates(t, db) != 1 {
		t.Fatal("swept aggregate kept")
	}
	_, err := db.Session(o.ID, "old-0000")
	wantErr(t, err, ErrExpired)
	s := must[Session](t)(db.Session(o.ID, "young-0001"))
	if string(s.Aggregate) != "agg" || s.FramesReceived != 2 {
		t.Fatalf("young session %+v", s)
	}
	if fs := must[[]FieldValue](t)(db.Fields(o.ID, "young-0001", nil)); len(fs) != 2 {
		t.Fatalf("young fields %s", fmtFields(fs))
	}
}

// countAggregates counts live session records with a non-empty aggregate.
func countAggregates(t testing.TB, db *DB) int {
	t.Helper()
	it, err := db.pdb.NewIter(nil)
	check(t, err)
	defer it.Close()
	n := 0
	for it.First(); it.Valid(); it.Next() {
		if it.Key()[0] != kindSession {
			continue
		}
		var r sessionRec
		check(t, parseSessionRec(it.Value(), &r))
		if len(r.aggregate) > 0 {
			n++
		}
	}
	return n
}

func TestRunSweeper(t *testing.T) {
	db, c := openMem(t)
	o, _ := newOrg(t, db, "acme")
	for i := 0; i < sweepChunk+10; i++ { // more than one chunk
		newSession(t, db, o.ID, fmt.Sprintf("csid-%04d", i))
		d := Decision{ID: db.NewDecisionID(), OrgID: o.ID}
		check(t, db.PutDecision(&d, fmt.Appendf(nil, "idem-%04d", i), [32]byte{}))
	}
	c.Advance(DefaultIdempotencyTTL) // longer than the sessions' TTL
	stop, done := make(chan struct{}), make(chan struct{})
	go func() { db.RunSweeper(stop, time.Millisecond); close(done) }()
	deadline := time.Now().Add(10 * time.Second)
	for countKind(t, db, kindExpiry) > 0 || countKind(t, db, kindIdemExpiry) > 0 || countKind(t, db, kindIdempotency) > 0 {
		if time.Now().After(deadline) {
			t.Fatal("sweeper did not sweep")
		}
		time.Sleep(time.Millisecond)
	}
	close(stop)
	<-done

	// It also stops when the store closes.
	done = make(chan struct{})
	go func() { db.RunSweeper(make(chan struct{}), time.Millisecond); close(done) }()
	check(t, db.Close())
	<-done
}
