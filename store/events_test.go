package store

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

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

// framesOf reads the session's stored frames in arrival order.
func framesOf(t testing.TB, db *DB, org OrgID, csid string) [][]byte {
	t.Helper()
	var out [][]byte
	check(t, db.Frames(org, csid, 0, func(_ uint32, raw []byte) error {
		out = append(out, bytes.Clone(raw))
		return nil
	}))
	return out
}

// TestAppendEventsOnce: a frame re-delivered with its seq and bytes is
// skipped; the same seq with other bytes is stored; repeats within one call
// are skipped; the frame cap counts stored frames only.
func TestAppendEventsOnce(t *testing.T) {
	db, _ := openMem(t)
	o, _ := newOrg(t, db, "acme")
	newSession(t, db, o.ID, "csid-once")
	in := []FrameIn{{1, []byte("frame-1")}, {2, []byte("frame-2")}, {3, []byte("frame-3")}}
	first, stored, err := db.AppendEventsOnce(o.ID, "csid-once", nil, in, false, 0, 0)
	check(t, err)
	if first != 0 || stored != 3 {
		t.Fatalf("first append: first %d stored %d", first, stored)
	}

	// The retry: nothing stored, nothing counted.
	first, stored, err = db.AppendEventsOnce(o.ID, "csid-once", nil, in, false, 0, 0)
	check(t, err)
	if first != 3 || stored != 0 {
		t.Fatalf("retry: first %d stored %d", first, stored)
	}
	if s := must[Session](t)(db.Session(o.ID, "csid-once")); s.FramesReceived != 3 {
		t.Fatalf("FramesReceived %d after the retry, want 3", s.FramesReceived)
	}

	// A retry that overlaps new frames, with a changed seq-2 frame and a
	// repeat within the call: the old frames go, the rest are stored in
	// order.
	in2 := []FrameIn{{2, []byte("frame-2")}, {3, []byte("frame-3")}, {2, []byte("other-2")},
		{4, []byte("frame-4")}, {4, []byte("frame-4")}, {9, []byte("frame-1")}}
	first, stored, err = db.AppendEventsOnce(o.ID, "csid-once", nil, in2, false, 0, 0)
	check(t, err)
	if first != 3 || stored != 3 {
		t.Fatalf("overlap: first %d stored %d, want 3 and 3", first, stored)
	}
	got := framesOf(t, db, o.ID, "csid-once")
	want := [][]byte{[]byte("frame-1"), []byte("frame-2"), []byte("frame-3"), []byte("other-2"), []byte("frame-4"), []byte("frame-1")}
	if fmt.Sprintf("%q", got) != fmt.Sprintf("%q", want) {
		t.Fatalf("frames %q, want %q", got, want)
	}
	// Both versions of seq 2 are now known.
	if _, stored, _ = db.AppendEventsOnce(o.ID, "csid-once", nil, []FrameIn{{2, []byte("frame-2")}, {2, []byte("other-2")}}, false, 0, 0); stored != 0 {
		t.Fatalf("known versions of seq 2 stored again: %d", stored)
	}
	if n := countKind(t, db, kindFrameSeq); n != 6 {
		t.Fatalf("%d frame-seq records, want 6", n)
	}

	// The cap counts only the frames that would be stored.
	first, stored, err = db.AppendEventsOnce(o.ID, "csid-once", nil, append(in, FrameIn{5, []byte("frame-5")}), false, 0, 7)
	check(t, err)
	if first != 6 || stored != 1 {
		t.Fatalf("at the cap: first %d stored %d", first, stored)
	}
	first, stored, err = db.AppendEventsOnce(o.ID, "csid-once", nil, []FrameIn{{1, []byte("frame-1")}, {6, []byte("frame-6")}}, false, 0, 7)
	wantErr(t, err, ErrFrameLimit)
	if first+uint32(stored) != 8 {
		t.Fatalf("over the cap: would have %d frames, want 8", first+uint32(stored))
	}
	if s := must[Session](t)(db.Session(o.ID, "csid-once")); s.FramesReceived != 7 {
		t.Fatalf("FramesReceived %d after a refused append, want 7", s.FramesReceived)
	}

	// Fields and final still apply when every frame is a re-delivery.
	_, stored, err = db.AppendEventsOnce(o.ID, "csid-once", []FieldValue{{Key: []byte("k"), Value: []byte(`1`)}}, in, true, 0, 0)
	check(t, err)
	if s := must[Session](t)(db.Session(o.ID, "csid-once")); stored != 0 || !s.Final || s.FramesReceived != 7 {
		t.Fatalf("stored %d; session %+v", stored, s)
	}
	if f := must[[]FieldValue](t)(db.Fields(o.ID, "csid-once", nil)); len(f) != 1 {
		t.Fatalf("fields %v", f)
	}
}

// TestAppendEventsOnceTenancy: what one session holds makes no frame of
// another session (same org or another org, same csid) a re-delivery.
func TestAppendEventsOnceTenancy(t *testing.T) {
	db, _ := openMem(t)
	a, _ := newOrg(t, db, "acme")
	b, _ := newOrg(t, db, "bank")
	in := []FrameIn{{1, []byte("frame-1")}, {2, []byte("frame-2")}}
	for _, sc := range []struct {
		org  OrgID
		csid string
	}{{a.ID, "csid-aaaa"}, {a.ID, "csid-aaab"}, {b.ID, "csid-aaaa"}} {
		newSession(t, db, sc.org, sc.csid)
		if _, stored, err := db.AppendEventsOnce(sc.org, sc.csid, nil, in, false, 0, 0); err != nil || stored != 2 {
			t.Fatalf("%s/%s: stored %d, %v", sc.org, sc.csid, stored, err)
		}
	}
	// The seq-less AppendEvents stores frames unknown to AppendEventsOnce.
	newSession(t, db, a.ID, "csid-plain")
	_, err := db.AppendEvents(a.ID, "csid-plain", nil, [][]byte{[]byte("frame-1")}, false)
	check(t, err)
	if _, stored, err := db.AppendEventsOnce(a.ID, "csid-plain", nil, in[:1], false, 0, 0); err != nil || stored != 1 {
		t.Fatalf("after a seq-less append: stored %d, %v", stored, err)
	}
	// Unknown and expired sessions.
	_, _, err = db.AppendEventsOnce(a.ID, "csid-none", nil, in, false, 0, 0)
	wantErr(t, err, ErrNotFound)
	_, _, err = db.AppendEventsOnce(OrgID{}, "csid-aaaa", nil, in, false, 0, 0)
	wantErr(t, err, ErrNotFound)
}

// TestAppendEventsOnceConcurrent: concurrent deliveries of one request
// store it once.
func TestAppendEventsOnceConcurrent(t *testing.T) {
	db, _ := openMem(t)
	o, _ := newOrg(t, db, "acme")
	newSession(t, db, o.ID, "csid-race")
	in := []FrameIn{{1, []byte("frame-1")}, {2, []byte("frame-2")}, {3, []byte("frame-3")}}
	var wg sync.WaitGroup
	var mu sync.Mutex
	total := 0
	for range 8 {
		wg.Go(func() {
			_, stored, err := db.AppendEventsOnce(o.ID, "csid-race", nil, in, false, 0, 0)
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			total += stored
			mu.Unlock()
		})
	}
	wg.Wait()
	if s := must[Session](t)(db.Session(o.ID, "csid-race")); total != 3 || s.FramesReceived != 3 {
		t.Fatalf("stored %d in all, FramesReceived %d; want 3", total, s.FramesReceived)
	}
}

// TestEventsHeld: a call holds when every field it would store is stored
// with the same value and time (the last of a repeated name) and every
// frame with the same seq and bytes; anything else is new.
func TestEventsHeld(t *testing.T) {
	db, clk := openMem(t)
	o, _ := newOrg(t, db, "acme")
	newSession(t, db, o.ID, "csid-held")
	fv := func(k, v string, ts int64) FieldValue { return FieldValue{Key: []byte(k), Value: []byte(v), TS: ts} }
	fields := []FieldValue{fv("amount", `"1"`, 10), fv("payee", `"bob"`, 11), fv("amount", `"2"`, 12)}
	frames := []FrameIn{{1, []byte("frame-1")}, {2, []byte("frame-2")}}
	if _, _, err := db.AppendEventsOnce(o.ID, "csid-held", fields, frames, true, 0, 0); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		fields []FieldValue
		frames []FrameIn
		held   bool
	}{
		{"the same call", fields, frames, true},
		{"part of it", fields[1:2], frames[1:], true},
		{"nothing", nil, nil, true},
		{"a replaced value", []FieldValue{fv("amount", `"1"`, 10)}, nil, false},
		{"a replaced value, then the stored one", []FieldValue{fv("amount", `"1"`, 10), fv("amount", `"2"`, 12)}, nil, true},
		{"another time", []FieldValue{fv("payee", `"bob"`, 99)}, nil, false},
		{"another field", []FieldValue{fv("memo", `"x"`, 11)}, nil, false},
		{"another frame under a held seq", nil, []FrameIn{{2, []byte("other-2")}}, false},
		{"a new seq", nil, []FrameIn{{3, []byte("frame-3")}}, false},
	} {
		held, err := db.EventsHeld(o.ID, "csid-held", c.fields, c.frames)
		if err != nil || held != c.held {
			t.Errorf("%s: held %v, %v; want %v", c.name, held, err, c.held)
		}
	}
	if _, err := db.EventsHeld(o.ID, "csid-none", nil, nil); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown session: %v", err)
	}
	o2, _ := newOrg(t, db, "other")
	if _, err := db.EventsHeld(o2.ID, "csid-held", fields, frames); !errors.Is(err, ErrNotFound) {
		t.Errorf("another organization's session: %v", err)
	}
	clk.Advance(DefaultSessionTTL + time.Second)
	if _, err := db.EventsHeld(o.ID, "csid-held", fields, frames); !errors.Is(err, ErrExpired) {
		t.Errorf("expired session: %v", err)
	}
}

// TestNewFramesSkipTheRedeliveryLookup: a session this process created and
// fed knows the highest seq it holds, so a frame above it is stored without
// looking up its re-delivery record, while a retry, a late frame and a
// session whose snapshot came from Pebble are looked up as before, with the
// same answers.
func TestNewFramesSkipTheRedeliveryLookup(t *testing.T) {
	db, _ := openMem(t)
	o, _ := newOrg(t, db, "acme")
	newSession(t, db, o.ID, "csid-floor")
	lookups := func() uint64 { return db.redeliveryLookups.Load() }
	appendOnce := func(in ...FrameIn) int {
		t.Helper()
		_, stored, err := db.AppendEventsOnce(o.ID, "csid-floor", nil, in, false, 0, 0)
		check(t, err)
		return stored
	}
	step := func(what string, wantStored int, wantLookups uint64, in ...FrameIn) {
		t.Helper()
		before := lookups()
		if stored := appendOnce(in...); stored != wantStored {
			t.Fatalf("%s: stored %d, want %d", what, stored, wantStored)
		}
		if got := lookups() - before; got != wantLookups {
			t.Fatalf("%s: %d re-delivery lookups, want %d", what, got, wantLookups)
		}
	}
	step("new frames", 3, 0, FrameIn{1, []byte("f1")}, FrameIn{2, []byte("f2")}, FrameIn{3, []byte("f3")})
	step("more new frames", 2, 0, FrameIn{4, []byte("f4")}, FrameIn{5, []byte("f5")})
	step("a retry", 0, 2, FrameIn{2, []byte("f2")}, FrameIn{5, []byte("f5")})
	step("seq 2 with other bytes, and a new one", 2, 1, FrameIn{2, []byte("other")}, FrameIn{10, []byte("f10")})
	step("a late frame below the floor", 1, 1, FrameIn{7, []byte("f7")})
	step("the late frame again", 0, 1, FrameIn{7, []byte("f7")})
	// A scoring pass republishes the snapshot; the floor survives it.
	check(t, db.SaveAggregate(o.ID, "csid-floor", []byte("agg"), 3))
	step("after a saved aggregate", 1, 0, FrameIn{11, []byte("f11")})

	// Evicted, then filled from Pebble by a Reader: the floor is unknown,
	// so every frame is looked up, and re-deliveries are still caught.
	org := o.ID
	key := appendSessionKey(nil, org, "csid-floor")
	db.sc.write(key, func(*cachedSession) *cachedSession { return nil })
	rd := db.NewReader()
	var sess Session
	check(t, rd.SessionInPlace(o.ID, "csid-floor", &sess))
	if _, err := rd.SessionFields(&sess, nil); err != nil {
		t.Fatal(err)
	}
	check(t, rd.Close())
	if e := db.sc.get(key); e == nil || e.seqKnown {
		t.Fatalf("a snapshot filled from Pebble: %+v", e)
	}
	step("after a fill", 1, 2, FrameIn{11, []byte("f11")}, FrameIn{12, []byte("f12")})

	// The highest seq there is leaves no floor above it.
	newSession(t, db, o.ID, "csid-top")
	_, stored, err := db.AppendEventsOnce(o.ID, "csid-top", nil, []FrameIn{{math.MaxUint64, []byte("top")}}, false, 0, 0)
	check(t, err)
	key = appendSessionKey(nil, org, "csid-top")
	if e := db.sc.get(key); stored != 1 || e == nil || e.seqKnown {
		t.Fatalf("after seq MaxUint64: stored %d, snapshot %+v", stored, e)
	}
	before := lookups()
	if _, stored, err = db.AppendEventsOnce(o.ID, "csid-top", nil, []FrameIn{{math.MaxUint64, []byte("top")}, {0, []byte("zero")}}, false, 0, 0); err != nil || stored != 1 || lookups()-before != 2 {
		t.Fatalf("retry of seq MaxUint64 with seq 0: stored %d, %d lookups, %v", stored, lookups()-before, err)
	}
}

// TestRedeliveryWithoutTheCache: with the session cache off every frame is
// looked up, and the answers are the same.
func TestRedeliveryWithoutTheCache(t *testing.T) {
	db, err := Open(Options{Dir: "db", FS: vfs.NewMem(), Now: newClock().Now, SessionCacheBytes: -1})
	check(t, err)
	t.Cleanup(func() { _ = db.Close() })
	o, _ := newOrg(t, db, "acme")
	newSession(t, db, o.ID, "csid-nocache")
	in := []FrameIn{{1, []byte("f1")}, {2, []byte("f2")}}
	for i, want := range []int{2, 0} {
		_, stored, err := db.AppendEventsOnce(o.ID, "csid-nocache", nil, in, false, 0, 0)
		check(t, err)
		if stored != want {
			t.Fatalf("append %d: stored %d, want %d", i, stored, want)
		}
	}
	if n := db.redeliveryLookups.Load(); n != 4 {
		t.Fatalf("%d lookups without the cache, want 4", n)
	}
}

// TestAppendEventsOnceFieldCap: the cap counts the session's stored names
// and the call's new ones once each; a later value of a stored name and a
// name repeated within the call do not count again. A refused call writes
// nothing.
func TestAppendEventsOnceFieldCap(t *testing.T) {
	db, _ := openMem(t)
	o, _ := newOrg(t, db, "acme")
	newSession(t, db, o.ID, "csid-fcap")
	fv := func(k string) FieldValue { return FieldValue{Key: []byte(k), Value: []byte(`1`)} }
	const limit = 5
	_, _, err := db.AppendEventsOnce(o.ID, "csid-fcap", []FieldValue{fv("a"), fv("b"), fv("c")}, nil, false, limit, 0)
	check(t, err)
	// Two stored names again and one new name twice: 4 names.
	_, _, err = db.AppendEventsOnce(o.ID, "csid-fcap", []FieldValue{fv("a"), fv("b"), fv("d"), fv("d")}, nil, false, limit, 0)
	check(t, err)
	// A fifth name fits; a sixth and seventh do not, and nothing of the call is stored.
	_, _, err = db.AppendEventsOnce(o.ID, "csid-fcap", []FieldValue{fv("a"), fv("e")}, nil, false, limit, 0)
	check(t, err)
	_, _, err = db.AppendEventsOnce(o.ID, "csid-fcap", []FieldValue{fv("a"), fv("f"), fv("g")}, []FrameIn{{1, []byte("frame-1")}}, false, limit, 0)
	wantErr(t, err, ErrFieldLimit)
	var limitErr *LimitError
	if !errors.As(err, &limitErr) || limitErr.Max != limit || limitErr.Would != limit+1 {
		t.Fatalf("limit error %#v", err)
	}
	if f := must[[]FieldValue](t)(db.Fields(o.ID, "csid-fcap", nil)); len(f) != limit {
		t.Fatalf("%d fields after a refused call, want %d", len(f), limit)
	}
	if s := must[Session](t)(db.Session(o.ID, "csid-fcap")); s.FramesReceived != 0 {
		t.Fatalf("a refused call stored %d frames", s.FramesReceived)
	}
	// Without a cap, or with fields only already stored, the call goes in.
	_, _, err = db.AppendEventsOnce(o.ID, "csid-fcap", []FieldValue{fv("a"), fv("e")}, nil, false, limit, 0)
	check(t, err)
	_, _, err = db.AppendEventsOnce(o.ID, "csid-fcap", []FieldValue{fv("f")}, nil, false, 0, 0)
	check(t, err)
}

// TestAppendEventsOnceFinal: a final session takes nothing new, but a call
// it holds in full (a retry of the final post) is answered without error
// and stores nothing.
func TestAppendEventsOnceFinal(t *testing.T) {
	db, _ := openMem(t)
	o, _ := newOrg(t, db, "acme")
	newSession(t, db, o.ID, "csid-final")
	fields := []FieldValue{{Key: []byte("total"), Value: []byte(`"35.00"`), TS: 7}}
	frames := []FrameIn{{1, []byte("frame-1")}}
	_, _, err := db.AppendEventsOnce(o.ID, "csid-final", fields, frames, true, 0, 0)
	check(t, err)
	first, stored, err := db.AppendEventsOnce(o.ID, "csid-final", fields, frames, true, 0, 0)
	if err != nil || first != 1 || stored != 0 {
		t.Fatalf("the retried final post: first %d stored %d, %v", first, stored, err)
	}
	for _, c := range []struct {
		name   string
		fields []FieldValue
		frames []FrameIn
	}{
		{"a new field", []FieldValue{{Key: []byte("payee"), Value: []byte(`1`)}}, nil},
		{"a new value", []FieldValue{{Key: []byte("total"), Value: []byte(`"36.00"`), TS: 8}}, nil},
		{"a new frame", nil, []FrameIn{{2, []byte("frame-2")}}},
	} {
		_, stored, err := db.AppendEventsOnce(o.ID, "csid-final", c.fields, c.frames, false, 0, 0)
		if !errors.Is(err, ErrFinal) || stored != 0 {
			t.Errorf("%s: stored %d, %v; want ErrFinal", c.name, stored, err)
		}
	}
	if s := must[Session](t)(db.Session(o.ID, "csid-final")); s.FramesReceived != 1 {
		t.Fatalf("FramesReceived %d, want 1", s.FramesReceived)
	}
}

// TestAppendEventsOnceFieldCapConcurrent: calls that each fit under the
// field cap but together do not are checked one after the other, under
// the session's lock, so they cannot together take the session past it.
// The clock is slowed down, and the store reads it under the lock, when
// it checks the session's expiry: were the names counted before the lock,
// both calls of a session would count while the first waited for the
// clock, before either committed.
func TestAppendEventsOnceFieldCapConcurrent(t *testing.T) {
	var slow atomic.Bool
	clk := newClock()
	now := func() time.Time {
		if slow.Load() {
			time.Sleep(5 * time.Millisecond)
		}
		return clk.Now()
	}
	db, err := Open(Options{Dir: "db", FS: vfs.NewMem(), Now: now})
	check(t, err)
	t.Cleanup(func() { _ = db.Close() })
	o, _ := newOrg(t, db, "acme")
	const limit, sessions = 10, 6
	fv := func(k string) FieldValue { return FieldValue{Key: []byte(k), Value: []byte(`1`)} }
	for i := range sessions {
		csid := fmt.Sprintf("csid-fcap-%d", i)
		newSession(t, db, o.ID, csid)
		var stored []FieldValue
		for j := range limit - 4 {
			stored = append(stored, fv(fmt.Sprintf("f%d", j)))
		}
		_, _, err := db.AppendEventsOnce(o.ID, csid, stored, nil, false, limit, 0)
		check(t, err)
	}
	slow.Store(true)
	var wg sync.WaitGroup
	refused := make([]atomic.Int32, sessions)
	start := make(chan struct{})
	for i := range sessions {
		csid := fmt.Sprintf("csid-fcap-%d", i)
		for w := range 2 {
			// Each adds 3 new names (6 + 3 fits; 6 + 3 + 3 does not).
			fields := []FieldValue{fv("f0"), fv(fmt.Sprintf("w%d-a", w)), fv(fmt.Sprintf("w%d-b", w)), fv(fmt.Sprintf("w%d-c", w))}
			wg.Go(func() {
				<-start
				_, _, err := db.AppendEventsOnce(o.ID, csid, fields, nil, false, limit, 0)
				switch {
				case errors.Is(err, ErrFieldLimit):
					refused[i].Add(1)
				case err != nil:
					t.Error(err)
				}
			})
		}
	}
	close(start)
	wg.Wait()
	slow.Store(false)
	for i := range sessions {
		csid := fmt.Sprintf("csid-fcap-%d", i)
		f := must[[]FieldValue](t)(db.Fields(o.ID, csid, nil))
		if len(f) > limit || refused[i].Load() != 1 {
			t.Errorf("%s: %d fields (cap %d), %d calls refused; want one", csid, len(f), limit, refused[i].Load())
		}
	}
}

// TestAppendEventsScored: the fold is stored with the frames, in their
// synced batch (it survives a crash right after, which SaveAggregate's
// unsynced save does not: TestAggregateSaveIsNotSynced), and only when it
// covers exactly what the session then holds.
func TestAppendEventsScored(t *testing.T) {
	db, fs, c := openCrashable(t)
	o, _ := newOrg(t, db, "acme")
	newSession(t, db, o.ID, "csid-fold")
	in := []FrameIn{{1, []byte("frame-1")}, {2, []byte("frame-2")}}
	first, stored, scored, err := db.AppendEventsScored(o.ID, "csid-fold", nil, in, false, 0, 0, &Fold{Aggregate: []byte("agg-2"), From: 0})
	check(t, err)
	if first != 0 || stored != 2 || !scored {
		t.Fatalf("first post: first %d stored %d scored %v", first, stored, scored)
	}
	crashed := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 0})

	// A fold made from a stale read (the session holds 2 frames, not 1).
	_, stored, scored, err = db.AppendEventsScored(o.ID, "csid-fold", nil, []FrameIn{{3, []byte("frame-3")}}, false, 0, 0, &Fold{Aggregate: []byte("stale"), From: 1})
	check(t, err)
	if stored != 1 || scored {
		t.Fatalf("stale fold: stored %d scored %v", stored, scored)
	}
	s := must[Session](t)(db.Session(o.ID, "csid-fold"))
	if s.FramesReceived != 3 || s.FramesScored != 2 || string(s.Aggregate) != "agg-2" {
		t.Fatalf("after a stale fold: received %d scored %d aggregate %q", s.FramesReceived, s.FramesScored, s.Aggregate)
	}
	check(t, db.SaveAggregate(o.ID, "csid-fold", []byte("agg-3"), 3))

	// A call holding a re-delivery: the fold was made from every frame of
	// the call, so it is not the fold of what is stored.
	_, stored, scored, err = db.AppendEventsScored(o.ID, "csid-fold", nil, []FrameIn{{3, []byte("frame-3")}, {4, []byte("frame-4")}}, false, 0, 0, &Fold{Aggregate: []byte("both"), From: 3})
	check(t, err)
	if stored != 1 || scored {
		t.Fatalf("with a re-delivery: stored %d scored %v", stored, scored)
	}
	// Unscored frames in the session: a fold from From frames covers less.
	_, _, scored, err = db.AppendEventsScored(o.ID, "csid-fold", nil, []FrameIn{{5, []byte("frame-5")}}, false, 0, 0, &Fold{Aggregate: []byte("x"), From: 4})
	check(t, err)
	if scored {
		t.Fatal("a fold over unscored frames was taken")
	}
	if s := must[Session](t)(db.Session(o.ID, "csid-fold")); s.FramesReceived != 5 || s.FramesScored != 3 || string(s.Aggregate) != "agg-3" {
		t.Fatalf("received %d scored %d aggregate %q, want 5, 3, agg-3", s.FramesReceived, s.FramesScored, s.Aggregate)
	}
	check(t, db.Close())

	db, err = Open(Options{Dir: "db", FS: crashed, Now: c.Now})
	check(t, err)
	defer db.Close()
	if s := must[Session](t)(db.Session(o.ID, "csid-fold")); s.FramesReceived != 2 || s.FramesScored != 2 || string(s.Aggregate) != "agg-2" {
		t.Fatalf("after the crash: received %d scored %d aggregate %q, want 2, 2, agg-2", s.FramesReceived, s.FramesScored, s.Aggregate)
	}
}
