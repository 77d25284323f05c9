package store

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// readerFixture stores, in org a, a session with fields, a template and an
// idempotent decision; org b has nothing.
func readerFixture(t *testing.T) (db *DB, c *clock, a, b Org) {
	db, c = openMem(t)
	a, _ = newOrg(t, db, "acme")
	b, _ = newOrg(t, db, "other")
	newSession(t, db, a.ID, "csid-0001")
	newSession(t, db, a.ID, "csid-0002") // a neighbour whose fields must not leak in
	fv := func(k, v string, ts int64) FieldValue { return FieldValue{Key: []byte(k), Value: []byte(v), TS: ts} }
	must[uint32](t)(db.AppendEvents(a.ID, "csid-0001", []FieldValue{fv("amount", `12.5`, 1), fv("payee", `"Bob"`, 2)}, nil, false))
	must[uint32](t)(db.AppendEvents(a.ID, "csid-0002", []FieldValue{fv("zzz", `1`, 1)}, nil, false))
	check(t, db.PutTemplate(a.ID, "user-1", []byte("template bytes")))
	d := Decision{ID: db.NewDecisionID(), OrgID: a.ID, CSID: "csid-0001", UserID: "user-1", Response: []byte(`{"ok":1}`)}
	check(t, db.PutDecision(&d, []byte("idem-1"), [32]byte{7}))
	return db, c, a, b
}

// readAll reads, through a Reader or (r nil) the DB, everything validate
// reads, and renders answers and errors.
func readAll(db *DB, r *Reader, org OrgID, csid, user string, idem []byte) string {
	var s Session
	var fields []FieldValue
	var tmpl []byte
	var err error
	var d Decision
	var h [32]byte
	out := ""
	if r != nil {
		d, h, err = r.Idempotent(org, idem)
	} else {
		d, h, err = db.Idempotent(org, idem)
	}
	out += fmt.Sprintf("idem %v %x %v\n", d, h[:2], err)
	if r != nil {
		err = r.SessionInPlace(org, csid, &s)
	} else {
		err = db.SessionInPlace(org, csid, &s)
	}
	exported := s
	exported.reuse = sessionReuse{} // which buffers and snapshot it used is not the answer
	out += fmt.Sprintf("session %v %v\n", exported, err)
	if r != nil {
		fields, err = r.SessionFields(&s, nil)
	} else {
		fields, err = db.SessionFields(&s, nil)
	}
	out += fmt.Sprintf("fields %s %v\n", fmtFields(fields), err)
	if r != nil {
		tmpl, err = r.TemplateInto(org, user, []byte("x"))
	} else {
		tmpl, err = db.TemplateInto(org, user, []byte("x"))
	}
	out += fmt.Sprintf("template %q %v\n", tmpl, err)
	return out
}

func TestReaderMatchesDB(t *testing.T) {
	db, _, a, b := readerFixture(t)
	r := db.NewReader()
	defer r.Close()
	cases := []struct {
		org              OrgID
		csid, user, idem string
	}{
		{a.ID, "csid-0001", "user-1", "idem-1"},
		{a.ID, "csid-0002", "user-1", "idem-2"},
		{a.ID, "csid-none", "user-2", "idem-1"},
		{b.ID, "csid-0001", "user-1", "idem-1"}, // another org: not found, all of it
		{OrgID{}, "csid-0001", "user-1", "idem-1"},
		{a.ID, "", "", ""},
	}
	for i, tc := range cases {
		want := readAll(db, nil, tc.org, tc.csid, tc.user, []byte(tc.idem))
		// One Reader for every case (reused by seeking), and a fresh one.
		for _, rd := range []*Reader{r, db.NewReader()} {
			got := readAll(db, rd, tc.org, tc.csid, tc.user, []byte(tc.idem))
			if rd != r {
				check(t, rd.Close())
			}
			if got != want {
				t.Fatalf("case %d: reader\n%s\nwant (DB)\n%s", i, got, want)
			}
		}
		if i == 0 && (strings.Contains(want, "not found") || !strings.Contains(want, "template bytes")) {
			t.Fatalf("case 0 should find everything:\n%s", want)
		}
	}
	check(t, r.Close())
	check(t, r.Close()) // harmless twice
}

// TestReaderSnapshot: a Reader reads as of its first read; after Close it
// reads the store as it is then.
func TestReaderSnapshot(t *testing.T) {
	db, _, a, _ := readerFixture(t)
	r := db.NewReader()
	defer r.Close()
	must[[]byte](t)(r.TemplateInto(a.ID, "user-1", nil))
	check(t, db.PutTemplate(a.ID, "user-2", []byte("new")))
	_, err := r.TemplateInto(a.ID, "user-2", nil)
	wantErr(t, err, ErrNotFound)
	check(t, r.Close())
	if got := must[[]byte](t)(r.TemplateInto(a.ID, "user-2", nil)); string(got) != "new" {
		t.Fatalf("after Close: %q", got)
	}
}

func TestReaderExpiry(t *testing.T) {
	db, c, a, _ := readerFixture(t)
	c.Advance(DefaultSessionTTL)
	r := db.NewReader()
	defer r.Close()
	var s Session
	wantErr(t, r.SessionInPlace(a.ID, "csid-0001", &s), ErrExpired)
	_, err := r.SessionFields(&s, nil) // the failed read names no session
	wantErr(t, err, ErrNotFound)
}

// TestReaderClose: an open Reader is a call in flight (DB.Close waits for
// it), and a Reader of a closed store answers ErrClosed.
func TestReaderClose(t *testing.T) {
	db, _, a, _ := readerFixture(t)
	r := db.NewReader()
	var s Session
	check(t, r.SessionInPlace(a.ID, "csid-0001", &s))
	// The session came from the session cache; a template read opens the
	// Reader's view of Pebble.
	must[[]byte](t)(r.TemplateInto(a.ID, "user-1", nil))
	closed := make(chan error)
	go func() { closed <- db.Close() }()
	for db.inflight.Load() >= 0 {
		time.Sleep(time.Millisecond)
	}
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) with a Reader open", err)
	case <-time.After(20 * time.Millisecond):
	}
	// Once closing, reads answer ErrClosed, as every call does; Close still
	// waits for the Reader's release.
	_, err := r.SessionFields(&s, nil)
	wantErr(t, err, ErrClosed)
	check(t, r.Close())
	check(t, <-closed)
	wantErr(t, r.SessionInPlace(a.ID, "csid-0001", &s), ErrClosed)
	_, err = r.TemplateInto(a.ID, "user-1", nil)
	wantErr(t, err, ErrClosed)
	check(t, r.Close())
}
