package store

import (
	"bytes"
	"testing"
)

func TestSessionFields(t *testing.T) {
	db, _ := openMem(t)
	o, _ := newOrg(t, db, "acme")
	other, _ := newOrg(t, db, "globex")
	fv := func(k, v string, ts int64) FieldValue { return FieldValue{Key: []byte(k), Value: []byte(v), TS: ts} }
	newSession(t, db, o.ID, "csid-0001")
	newSession(t, db, o.ID, "csid-0002")
	newSession(t, db, other.ID, "csid-0001")
	must[uint32](t)(db.AppendEvents(o.ID, "csid-0001", []FieldValue{fv("total", `"35.00"`, 1), fv("payee", `6`, 2)}, nil, false))
	must[uint32](t)(db.AppendEvents(o.ID, "csid-0002", []FieldValue{fv("z", `1`, 1)}, nil, false))
	must[uint32](t)(db.AppendEvents(other.ID, "csid-0001", []FieldValue{fv("evil", `1`, 1)}, nil, false))

	var s Session
	_, err := db.SessionFields(&s, nil)
	wantErr(t, err, ErrNotFound) // nothing read into s
	plain := must[Session](t)(db.Session(o.ID, "csid-0001"))
	_, err = db.SessionFields(&plain, nil)
	wantErr(t, err, ErrNotFound) // Session's value keeps no read state

	var got []FieldValue
	for _, read := range []func(OrgID, string, *Session) error{db.SessionInto, db.SessionInPlace} {
		check(t, read(o.ID, "csid-0001", &s))
		got = must[[]FieldValue](t)(db.SessionFields(&s, got[:0]))
		want := must[[]FieldValue](t)(db.Fields(o.ID, "csid-0001", nil))
		if fmtFields(got) != fmtFields(want) || len(got) != 2 {
			t.Fatalf("fields = %s\nwant     %s", fmtFields(got), fmtFields(want))
		}
	}
	// Copies are capped: appending to one does not touch its neighbour.
	got[0].Key = append(got[0].Key, "XX"...)
	if string(got[0].Value) != `6` {
		t.Fatalf("arena copies overlap: %s", fmtFields(got))
	}
	// The session read decides, not the exported fields a caller can edit.
	s.OrgID, s.CSID = other.ID, "csid-0002"
	got = must[[]FieldValue](t)(db.SessionFields(&s, got[:0]))
	if len(got) != 2 || string(got[1].Key) != "total" {
		t.Fatalf("fields after editing OrgID/CSID: %s", fmtFields(got))
	}
	// Another read, another session's fields.
	check(t, db.SessionInPlace(other.ID, "csid-0001", &s))
	got = must[[]FieldValue](t)(db.SessionFields(&s, got[:0]))
	if fmtFields(got) != fmtFields([]FieldValue{fv("evil", `1`, 1)}) {
		t.Fatalf("other org's fields: %s", fmtFields(got))
	}
	// After a failed read there is no session to read fields of, not even
	// the one read before.
	wantErr(t, db.SessionInPlace(o.ID, "csid-none", &s), ErrNotFound)
	_, err = db.SessionFields(&s, got[:0])
	wantErr(t, err, ErrNotFound)

	// A huge field buffer is not kept for the next read.
	big := bytes.Repeat([]byte("9"), maxFieldArena)
	must[uint32](t)(db.AppendEvents(o.ID, "csid-0002", []FieldValue{{Key: []byte("big"), Value: big, TS: 1}}, nil, false))
	check(t, db.SessionInPlace(o.ID, "csid-0002", &s))
	got = must[[]FieldValue](t)(db.SessionFields(&s, got[:0]))
	if len(got) != 2 || !bytes.Equal(got[0].Value, big) {
		t.Fatalf("big field: %d fields", len(got))
	}
	check(t, db.SessionInPlace(o.ID, "csid-0001", &s))
	got = must[[]FieldValue](t)(db.SessionFields(&s, got[:0]))
	if cap(s.reuse.arena) > maxFieldArena {
		t.Fatalf("kept a %d-byte field buffer", cap(s.reuse.arena))
	}
}
