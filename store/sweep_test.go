package store

import (
	"fmt"
	"testing"
	"time"
)

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
		switch it.Key()[0] {
		case kindAggregate:
			n++
		case kindSession:
			var r sessionRec
			check(t, parseSessionRec(it.Value(), &r))
			if len(r.aggregate) > 0 { // inline, format 01
				n++
			}
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

// TestSweepFrameSeq: the sweep deletes a session's frame-seq records with
// its frames, and only the expired session's.
func TestSweepFrameSeq(t *testing.T) {
	db, c := openMem(t)
	o, _ := newOrg(t, db, "acme")
	in := []FrameIn{{1, []byte("frame-1")}, {2, []byte("frame-2")}}
	newSession(t, db, o.ID, "csid-old1")
	_, _, err := db.AppendEventsOnce(o.ID, "csid-old1", nil, in, false, 0, 0)
	check(t, err)
	c.Advance(DefaultSessionTTL / 2)
	newSession(t, db, o.ID, "csid-new1")
	_, _, err = db.AppendEventsOnce(o.ID, "csid-new1", nil, in[:1], false, 0, 0)
	check(t, err)
	if n := countKind(t, db, kindFrameSeq); n != 3 {
		t.Fatalf("%d frame-seq records before the sweep, want 3", n)
	}
	c.Advance(DefaultSessionTTL/2 + 1)
	if n, err := db.SweepExpired(0); err != nil || n != 1 {
		t.Fatalf("swept %d, %v", n, err)
	}
	if fs, fr := countKind(t, db, kindFrameSeq), countKind(t, db, kindFrame); fs != 1 || fr != 1 {
		t.Fatalf("after the sweep: %d frame-seq records, %d frames; want 1 and 1", fs, fr)
	}
	// The survivor still knows its frame.
	if _, stored, err := db.AppendEventsOnce(o.ID, "csid-new1", nil, in[:1], false, 0, 0); err != nil || stored != 0 {
		t.Fatalf("survivor: stored %d, %v", stored, err)
	}
}
