package store

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// TestArgumentErrorsBeforeClosed pins the order begin answers in: an
// unknown organization first, then the method's own verdict on its other
// arguments, and only then a closed store. A caller sees the same error
// for the same arguments whether or not the store is closing.
func TestArgumentErrorsBeforeClosed(t *testing.T) {
	db, _ := openMem(t)
	o, _ := newOrg(t, db, "acme")
	long := strings.Repeat("x", MaxKeyBytes+1)
	huge := make([]byte, MaxValueBytes+1)
	cases := []struct {
		name string
		want error // on an open store and on a closed one
		call func() error
	}{
		{"CreateSession unknown org and empty csid", ErrNotFound, func() error {
			_, _, err := db.CreateSession(OrgID{}, "", "u", "a")
			return err
		}},
		{"CreateSession empty csid", ErrEmptyID, func() error {
			_, _, err := db.CreateSession(o.ID, "", "u", "a")
			return err
		}},
		{"CreateSession long userID", ErrKeyTooLong, func() error {
			_, _, err := db.CreateSession(o.ID, "csid", long, "a")
			return err
		}},
		{"Session empty csid", ErrNotFound, func() error {
			_, err := db.Session(o.ID, "")
			return err
		}},
		{"AppendEvents unnamed field", ErrEmptyID, func() error {
			_, err := db.AppendEvents(o.ID, "csid", []FieldValue{{Value: []byte("1")}}, nil, false)
			return err
		}},
		{"AppendEventsOnce huge frame", ErrTooLarge, func() error {
			_, _, err := db.AppendEventsOnce(o.ID, "csid", nil, []FrameIn{{Raw: huge[:MaxFrameBytes+1]}}, false, 0, 0)
			return err
		}},
		{"SaveAggregate huge aggregate", ErrTooLarge, func() error {
			return db.SaveAggregate(o.ID, "csid", huge, 0)
		}},
		{"PutDecision no id", ErrEmptyID, func() error {
			return db.PutDecision(&Decision{OrgID: o.ID}, nil, [32]byte{})
		}},
		{"PutDecision unknown org and no id", ErrNotFound, func() error {
			return db.PutDecision(&Decision{OrgID: OrgID{}}, nil, [32]byte{})
		}},
		{"PutTemplate empty user", ErrEmptyID, func() error {
			return db.PutTemplate(o.ID, "", []byte("t"))
		}},
		{"Idempotent empty key", ErrNotFound, func() error {
			_, _, err := db.Idempotent(o.ID, nil)
			return err
		}},
		{"CreateOrg long name", ErrTooLarge, func() error {
			_, _, err := db.CreateOrg(long, nil)
			return err
		}},
		{"OrgByAPIKey malformed key", ErrNotFound, func() error {
			_, err := db.OrgByAPIKey([]byte("csk_short"))
			return err
		}},
		{"OrgByCID empty cid", ErrNotFound, func() error {
			_, err := db.OrgByCID(nil)
			return err
		}},
	}
	for _, c := range cases {
		if err := c.call(); !errors.Is(err, c.want) {
			t.Errorf("%s, open: %v, want %v", c.name, err, c.want)
		}
	}
	check(t, db.Close())
	for _, c := range cases {
		if err := c.call(); !errors.Is(err, c.want) {
			t.Errorf("%s, closed: %v, want %v", c.name, err, c.want)
		}
	}
	// Arguments that pass: the closed store answers.
	_, err := db.Session(o.ID, "csid")
	wantErr(t, err, ErrClosed)
	wantErr(t, db.PutTemplate(o.ID, "u", []byte("t")), ErrClosed)
}

// TestCallEndsClean: a call goes back to the pool with no organization, no
// stripe and empty buffers, so the next call, whichever it is, starts from
// nothing; and the stripe it held is free again.
func TestCallEndsClean(t *testing.T) {
	db, _ := openMem(t)
	o, _ := newOrg(t, db, "acme")
	c, err := db.begin(o.ID, nil)
	check(t, err)
	c.hold(db.lock(domainSession, c.org, "csid"))
	c.key = append(c.key, "key"...)
	c.val = append(c.val, bytes.Repeat([]byte{1}, 2<<20)...) // over the size kept
	c.end()
	if c.db != nil || c.org != (OrgID{}) || c.held != nil || len(c.key) != 0 || c.val != nil {
		t.Fatalf("ended call keeps db %v org %v held %v key %q val cap %d", c.db, c.org, c.held, c.key, cap(c.val))
	}
	// The stripe is free: taking it again does not block.
	if !db.stripes[stripeOf(domainSession, o.ID, "csid")].TryLock() {
		t.Fatal("the stripe is still held after end")
	}
}
