package store

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

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
	wantErr(t, db.PutDecision(&Decision{OrgID: OrgID{}, ID: "1"}, nil, hash), ErrNotFound)
	wantErr(t, db.PutDecision(&Decision{OrgID: o.ID, ID: "1"}, make([]byte, MaxKeyBytes+1), hash), ErrKeyTooLong)
	wantErr(t, db.PutDecision(&Decision{OrgID: o.ID, ID: "1", Response: make([]byte, MaxValueBytes+1)}, nil, hash), ErrTooLarge)
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

// TestPutDecisionWithTemplate: a decision's template is stored in the
// decision's batch, so a decision refused (its idempotency key taken)
// enrolls no one, and a stored one enrolls its user.
func TestPutDecisionWithTemplate(t *testing.T) {
	db, _ := openMem(t)
	o, _ := newOrg(t, db, "acme")
	won := Decision{ID: db.NewDecisionID(), OrgID: o.ID, CSID: "c1", UserID: "u1", Response: []byte(`{}`)}
	check(t, db.PutDecision(&won, []byte("k"), [32]byte{1}))
	lost := Decision{ID: db.NewDecisionID(), OrgID: o.ID, CSID: "c2", UserID: "u2", Response: []byte(`{}`),
		Template: []byte("t2"), TemplateUser: "u2"}
	wantErr(t, db.PutDecision(&lost, []byte("k"), [32]byte{2}), ErrExists)
	_, err := db.Template(o.ID, "u2")
	wantErr(t, err, ErrNotFound)
	bad := lost
	bad.TemplateUser = ""
	wantErr(t, db.PutDecision(&bad, nil, [32]byte{}), ErrEmptyID)
	check(t, db.PutDecision(&lost, []byte("k2"), [32]byte{2}))
	if tm := must[[]byte](t)(db.Template(o.ID, "u2")); string(tm) != "t2" {
		t.Fatalf("template %q", tm)
	}
	if d := must[Decision](t)(db.Decision(o.ID, lost.ID)); d.UserID != "u2" || d.Template != nil {
		t.Fatalf("decision %+v", d)
	}
}

// TestDecisionsOfUser: the user's decisions newest first, paged, each
// indexed by the batch that stored it; another user's and another
// organization's are not listed, and a bad cursor is ErrCursor.
func TestDecisionsOfUser(t *testing.T) {
	db, c := openMem(t)
	o, _ := newOrg(t, db, "acme")
	other, _ := newOrg(t, db, "evil")
	var want []string
	for i := range 5 {
		d := Decision{ID: db.NewDecisionID(), OrgID: o.ID, CSID: fmt.Sprintf("csid-%04d", i), UserID: "ann",
			CreatedAt: c.Now().UnixMilli(), Score: int32(i), Response: []byte("{}")}
		check(t, db.PutDecision(&d, nil, [32]byte{}))
		want = append([]string{d.ID}, want...)
	}
	for _, d := range []Decision{
		{ID: db.NewDecisionID(), OrgID: o.ID, CSID: "csid-bob", UserID: "bob"},
		{ID: db.NewDecisionID(), OrgID: o.ID, CSID: "csid-none"},
		{ID: db.NewDecisionID(), OrgID: other.ID, CSID: "csid-evil", UserID: "ann"},
	} {
		check(t, db.PutDecision(&d, nil, [32]byte{}))
	}
	var got []string
	cursor := ""
	for pages := 0; ; pages++ {
		page, next, err := db.DecisionsOfUser(o.ID, "ann", 2, cursor)
		check(t, err)
		for _, d := range page {
			if d.UserID != "ann" || d.OrgID != o.ID || string(d.Response) != "{}" {
				t.Fatalf("decision %+v", d)
			}
			got = append(got, d.ID)
		}
		if next == "" {
			if pages != 2 {
				t.Fatalf("%d pages, want 3", pages+1)
			}
			break
		}
		cursor = next
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("decisions %v, want %v", got, want)
	}
	if l, next, err := db.DecisionsOfUser(other.ID, "bob", 0, ""); err != nil || len(l) != 0 || next != "" {
		t.Fatalf("other organization's bob: %v %q %v", l, next, err)
	}
	_, _, err := db.DecisionsOfUser(o.ID, "ann", 2, "not base64!")
	wantErr(t, err, ErrCursor)
	_, _, err = db.DecisionsOfUser(o.ID, "", 2, "")
	wantErr(t, err, ErrNotFound)
}
