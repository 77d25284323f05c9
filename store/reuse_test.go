package store

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"
)

// The request path's reads into reused values: SessionInPlace,
// SessionFields, TemplateInto, AssignDecisionID. They must answer exactly
// what the copying reads answer, keep tenancy, and reuse their buffers.

func TestSessionInPlace(t *testing.T) {
	db, c := openMem(t)
	o, _ := newOrg(t, db, "acme")
	other, _ := newOrg(t, db, "globex")
	_, _, err := db.CreateSession(o.ID, "csid-0001", "user-1", "wire")
	check(t, err)
	_, _, err = db.CreateSession(o.ID, "csid-0002", "a-much-longer-user-id-2", "payee-change")
	check(t, err)
	check(t, db.SaveAggregate(o.ID, "csid-0001", nil, 0))

	var s Session
	for _, csid := range []string{"csid-0001", "csid-0002", "csid-0001"} {
		check(t, db.SessionInPlace(o.ID, csid, &s))
		want := must[Session](t)(db.Session(o.ID, csid))
		got := s
		got.reuse = sessionReuse{}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("in place %+v\nwant     %+v", got, want)
		}
	}
	// The views share s's buffer: the next read overwrites them.
	check(t, db.SessionInPlace(o.ID, "csid-0001", &s))
	user := s.UserID
	check(t, db.SessionInPlace(o.ID, "csid-0002", &s))
	if user == "user-1" {
		t.Fatal("the user id survived the next read: not a view of the reused buffer")
	}
	// SessionInto's strings are the caller's to keep.
	check(t, db.SessionInto(o.ID, "csid-0001", &s))
	user = s.UserID
	check(t, db.SessionInto(o.ID, "csid-0002", &s))
	if user != "user-1" {
		t.Fatalf("SessionInto's user id changed to %q", user)
	}

	wantErr(t, db.SessionInPlace(other.ID, "csid-0001", &s), ErrNotFound)
	wantErr(t, db.SessionInPlace(o.ID, "csid-none", &s), ErrNotFound)
	wantErr(t, db.SessionInPlace("not-an-org", "csid-0001", &s), ErrNotFound)
	c.Advance(DefaultSessionTTL)
	wantErr(t, db.SessionInPlace(o.ID, "csid-0001", &s), ErrExpired)
}

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
	for _, read := range []func(string, string, *Session) error{db.SessionInto, db.SessionInPlace} {
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

func TestTemplateInto(t *testing.T) {
	db, _ := openMem(t)
	o, _ := newOrg(t, db, "acme")
	other, _ := newOrg(t, db, "globex")
	check(t, db.PutTemplate(o.ID, "user-1", []byte("tmpl-1")))
	buf := []byte("prefix:")
	buf = must[[]byte](t)(db.TemplateInto(o.ID, "user-1", buf))
	if string(buf) != "prefix:tmpl-1" {
		t.Fatalf("appended %q", buf)
	}
	for _, c := range []struct{ org, user string }{{other.ID, "user-1"}, {o.ID, "user-2"}, {o.ID, ""}, {"nope", "user-1"}} {
		got, err := db.TemplateInto(c.org, c.user, buf[:3])
		wantErr(t, err, ErrNotFound)
		if string(got) != "pre" {
			t.Fatalf("%v: dst changed to %q", c, got)
		}
	}
	// Template keeps answering a non-nil empty slice for an empty template.
	check(t, db.PutTemplate(o.ID, "user-3", nil))
	if tm := must[[]byte](t)(db.Template(o.ID, "user-3")); tm == nil || len(tm) != 0 {
		t.Fatalf("empty template %v", tm)
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

func TestOrgGeneration(t *testing.T) {
	db, _ := openMem(t)
	gen := db.OrgGeneration()
	changed := func(what string) {
		t.Helper()
		if g := db.OrgGeneration(); g <= gen {
			t.Fatalf("%s: generation %d, was %d", what, g, gen)
		} else {
			gen = g
		}
	}
	same := func(what string) {
		t.Helper()
		if g := db.OrgGeneration(); g != gen {
			t.Fatalf("%s: generation %d, was %d", what, g, gen)
		}
	}
	o, key := newOrg(t, db, "acme")
	changed("CreateOrg")
	must[string](t)(db.AddAPIKey(o.ID))
	changed("AddAPIKey")
	check(t, db.SetOrgPolicy(o.ID, []byte(`{"minScore":9000}`)))
	changed("SetOrgPolicy")
	check(t, db.BindCert(o.ID, [32]byte{1}))
	changed("BindCert")
	must[Org](t)(db.OrgByAPIKey([]byte(key)))
	must[Org](t)(db.OrgByCID([]byte(o.CID)))
	must[Org](t)(db.OrgByID(o.ID))
	must[[]Org](t)(db.Orgs())
	newSession(t, db, o.ID, "csid-0001")
	same("reads and sessions")
}
