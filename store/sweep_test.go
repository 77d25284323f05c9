package store

import (
	"fmt"
	"math/rand/v2"
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

// TestSweeperFreesFrameBlobs: once the sweeper has swept sessions, the blob
// files their frames were kept in go (compactSeparated), with no wait for
// Pebble's own compactions to take the tombstones down to the frames; a
// live session's frames stay.
func TestSweeperFreesFrameBlobs(t *testing.T) {
	db, c := openMem(t)
	o, _ := newOrg(t, db, "acme")
	rng := rand.New(rand.NewPCG(3, 4))
	frame := func() []byte {
		f := make([]byte, 2072)
		for i := range f {
			f[i] = byte(rng.Uint32())
		}
		return f
	}
	for i := range 100 {
		csid := fmt.Sprintf("csid-%04d", i)
		newSession(t, db, o.ID, csid)
		_, err := db.AppendEvents(o.ID, csid, nil, [][]byte{frame(), frame(), frame()}, true)
		check(t, err)
	}
	check(t, db.pdb.Flush())
	c.Advance(DefaultSessionTTL / 2)
	newSession(t, db, o.ID, "csid-live")
	_, err := db.AppendEvents(o.ID, "csid-live", nil, [][]byte{frame()}, true)
	check(t, err)
	check(t, db.pdb.Flush())
	if b := db.pdb.Metrics().BlobFiles; b.ReferencedValueSize < 300*2072 {
		t.Fatalf("%d bytes of frames referenced in blob files before the sweep, want at least %d", b.ReferencedValueSize, 300*2072)
	}
	c.Advance(DefaultSessionTTL / 2) // the first 100 expire
	stop, done := make(chan struct{}), make(chan struct{})
	go func() { db.RunSweeper(stop, time.Hour); close(done) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		b := db.pdb.Metrics().BlobFiles
		if b.ReferencedValueSize <= 2*2073 && b.ValueSize <= 2*2073 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the sweep, blob files hold %d bytes of values, %d of them referenced; want the live session's frame only", b.ValueSize, b.ReferencedValueSize)
		}
		time.Sleep(time.Millisecond)
	}
	close(stop)
	<-done
	if got := framesOf(t, db, o.ID, "csid-live"); len(got) != 1 {
		t.Fatalf("the live session holds %d frames", len(got))
	}
}
