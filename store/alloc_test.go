//go:build !race

package store

import (
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// TestAllocations pins what the per-request store calls allocate. The
// validate path's reads (through a Reader: SessionInPlace, SessionFields,
// TemplateInto) and its write (AssignDecisionID, PutDecision) allocate
// nothing once the caller's values and buffers have grown; the reads that
// return strings a caller keeps (SessionInto, NewDecisionID) allocate
// exactly those. A session read without a Reader (the events path's) stops
// at the newest version with pebble.DB.Get, which allocates once per table
// it consults (db.readNewest): here one.
//
// The records are flushed to sstables first: that is where a long-running
// server finds them, and where pebble.DB.Get allocates. The session cache
// is off, so a Reader's reads reach Pebble through its iterator, as they do
// for a session the cache does not hold; TestAllocationsCachedReader pins
// the cached path.
func TestAllocations(t *testing.T) {
	db, err := Open(Options{Dir: "db", FS: vfs.NewMem(), Now: newClock().Now, SessionCacheBytes: -1})
	check(t, err)
	t.Cleanup(func() { _ = db.Close() })
	o, key := newOrg(t, db, "acme")
	s, token, err := db.CreateSession(o.ID, "csid-allocs", "user-12345", "wire-transfer")
	check(t, err)
	fields := []FieldValue{{Key: []byte("amount"), Value: []byte(`"35.00"`), TS: 1}, {Key: []byte("payee"), Value: []byte(`"ACME Ltd"`), TS: 2}}
	_, err = db.AppendEvents(o.ID, "csid-allocs", fields, [][]byte{[]byte("frame")}, false)
	check(t, err)
	check(t, db.SaveAggregate(o.ID, "csid-allocs", []byte("aggregate"), 1))
	check(t, db.PutTemplate(o.ID, "user-12345", []byte("template bytes")))
	check(t, db.pdb.Flush())

	dst := Session{Aggregate: make([]byte, 0, 64)}
	tok, apiKey := []byte(token), []byte(key)
	var fv []FieldValue
	var tmpl []byte
	var d Decision
	idem := []byte("idem-00000000")
	rd := db.NewReader()
	i := 0

	for _, c := range []struct {
		name string
		max  float64
		fn   func()
	}{
		// UserID and Action, and one for each Get (the session record's,
		// the aggregate's: its own record); the aggregate goes into dst's
		// buffer.
		{"SessionInto", 4, func() {
			if err := db.SessionInto(o.ID, "csid-allocs", &dst); err != nil {
				t.Fatal(err)
			}
		}},
		{"SessionInPlace", 2, func() { // a Get each for the record and the aggregate
			if err := db.SessionInPlace(o.ID, "csid-allocs", &dst); err != nil || dst.UserID != "user-12345" {
				t.Fatal(err, dst.UserID)
			}
		}},
		// The validate path: one Reader per request, closed after its reads.
		{"Reader.SessionInPlace+SessionFields+TemplateInto", 0, func() {
			fv, tmpl = validateReads(t, rd, o.ID, &dst, fv, tmpl, 2)
			if rd.it == nil {
				t.Fatal("the reads did not reach Pebble's iterator")
			}
			check(t, rd.Close())
		}},
		{"SessionFields", 0, func() {
			var err error
			if fv, err = db.SessionFields(&dst, fv[:0]); err != nil || len(fv) != 2 {
				t.Fatal(err, len(fv))
			}
		}},
		{"TemplateInto", 0, func() {
			var err error
			if tmpl, err = db.TemplateInto(o.ID, "user-12345", tmpl[:0]); err != nil || len(tmpl) == 0 {
				t.Fatal(err)
			}
		}},
		{"CheckCollectToken", 0, func() {
			if !db.CheckCollectToken(&s, tok) {
				t.Fatal("token")
			}
		}},
		{"NewDecisionID", 1, func() { _ = db.NewDecisionID() }}, // the id string
		{"AssignDecisionID", 0, func() { db.AssignDecisionID(&d) }},
		{"PutDecision", 0, func() {
			d = Decision{OrgID: o.ID, CSID: "csid-allocs", UserID: "user-12345", CreatedAt: 1, Score: 2000, Response: benchResponse}
			db.AssignDecisionID(&d)
			if err := db.PutDecision(&d, nil, [32]byte{}); err != nil {
				t.Fatal(err)
			}
		}},
		{"PutDecisionIdempotent", 0, func() {
			d = Decision{OrgID: o.ID, CSID: "csid-allocs", UserID: "user-12345", CreatedAt: 1, Score: 2000, Response: benchResponse}
			db.AssignDecisionID(&d)
			idem = appendInt8(idem[:5], i)
			i++
			if err := db.PutDecision(&d, idem, [32]byte{1}); err != nil {
				t.Fatal(err)
			}
		}},
		// Not on the request path (the server caches what a key resolves
		// to): ID, Name and CID strings.
		{"OrgByAPIKey", 3, func() {
			if _, err := db.OrgByAPIKey(apiKey); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		if n := testing.AllocsPerRun(200, c.fn); n > c.max {
			t.Errorf("%s: %.1f allocs per call, want <= %.0f", c.name, n, c.max)
		}
	}
}

// TestAllocationsCachedReader pins validate's reads of a session the cache
// holds: views of the cached snapshot, no Pebble read, nothing allocated.
func TestAllocationsCachedReader(t *testing.T) {
	db, _ := openMem(t)
	o, _ := newOrg(t, db, "acme")
	_, _, err := db.CreateSession(o.ID, "csid-allocs", "user-12345", "wire-transfer")
	check(t, err)
	fields := []FieldValue{{Key: []byte("amount"), Value: []byte(`"35.00"`), TS: 1}}
	_, err = db.AppendEvents(o.ID, "csid-allocs", fields, nil, false)
	check(t, err)
	check(t, db.PutTemplate(o.ID, "user-12345", []byte("template bytes")))
	check(t, db.pdb.Flush())
	rd := db.NewReader()
	dst := Session{Aggregate: make([]byte, 0, 64)}
	var fv []FieldValue
	var tmpl []byte
	opened := false // a read reached Pebble
	read := func() {
		fv, tmpl = validateReads(t, rd, o.ID, &dst, fv, tmpl, 1)
		opened = opened || rd.it != nil
		check(t, rd.Close())
	}
	read() // fills the cache
	opened = false
	if n := testing.AllocsPerRun(200, read); n > 0 {
		t.Errorf("%.1f allocs per cached validate read, want 0", n)
	}
	if opened {
		t.Fatal("a cached read opened an iterator")
	}
}

// validateReads makes validate's reads of session "csid-allocs" (with
// fields fields) and user "user-12345"'s template through rd, into dst and
// the buffers fv and tmpl, which it returns grown.
func validateReads(t *testing.T, rd *Reader, org OrgID, dst *Session, fv []FieldValue, tmpl []byte, fields int) ([]FieldValue, []byte) {
	var err error
	if err = rd.SessionInPlace(org, "csid-allocs", dst); err != nil || dst.UserID != "user-12345" {
		t.Fatal(err, dst.UserID)
	}
	if fv, err = rd.SessionFields(dst, fv[:0]); err != nil || len(fv) != fields {
		t.Fatal(err, len(fv))
	}
	if tmpl, err = rd.TemplateInto(org, "user-12345", tmpl[:0]); err != nil || len(tmpl) == 0 {
		t.Fatal(err)
	}
	return fv, tmpl
}
