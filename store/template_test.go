package store

import (
	"testing"
)

func TestTemplates(t *testing.T) {
	db, _ := openMem(t)
	o, _ := newOrg(t, db, "acme")
	_, err := db.Template(o.ID, "u")
	wantErr(t, err, ErrNotFound)
	check(t, db.PutTemplate(o.ID, "u", []byte("v1")))
	check(t, db.PutTemplate(o.ID, "u2", []byte{}))
	check(t, db.PutTemplate(o.ID, "u", []byte("v2")))
	if got := must[[]byte](t)(db.Template(o.ID, "u")); string(got) != "v2" {
		t.Fatalf("template %q", got)
	}
	if got := must[[]byte](t)(db.Template(o.ID, "u2")); got == nil || len(got) != 0 {
		t.Fatalf("empty template %q", got)
	}
	check(t, db.DeleteTemplate(o.ID, "u"))
	_, err = db.Template(o.ID, "u")
	wantErr(t, err, ErrNotFound)
	wantErr(t, db.DeleteTemplate(o.ID, "u"), ErrNotFound)
	wantErr(t, db.PutTemplate(o.ID, "", nil), ErrEmptyID)
	wantErr(t, db.PutTemplate(o.ID, string(make([]byte, MaxKeyBytes+1)), nil), ErrKeyTooLong)
	wantErr(t, db.PutTemplate(o.ID, "u", make([]byte, MaxValueBytes+1)), ErrTooLarge)
	wantErr(t, db.PutTemplate(OrgID{}, "u", nil), ErrNotFound)
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
	for _, c := range []struct {
		org  OrgID
		user string
	}{{other.ID, "user-1"}, {o.ID, "user-2"}, {o.ID, ""}, {OrgID{}, "user-1"}} {
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
