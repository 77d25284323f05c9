package store

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/klauspost/compress/zstd"
)

// sampleRecords are valid encodings of every record format.
func sampleRecords() map[string][]byte {
	h := [32]byte{1, 2, 3}
	return map[string][]byte{
		"session": appendSessionRec(nil, &sessionRec{final: true, aggApart: true, createdAt: 1, expiresAt: 2, received: 5, scored: 3,
			tokenHash: h, userID: []byte("user"), action: []byte("wire")}),
		"session-inline": appendSessionRecInline(nil, &sessionRec{final: true, createdAt: 1, expiresAt: 2, received: 5, scored: 3,
			tokenHash: h, userID: []byte("user"), action: []byte("wire"), aggregate: []byte("agg")}),
		"tombstone":   appendSessionRec(nil, &sessionRec{tombstone: true, createdAt: 1, expiresAt: 2}),
		"org":         appendOrgRec(nil, &orgRec{createdAt: 1, name: []byte("acme"), cid: []byte("cid_x"), policy: []byte("{}"), certs: make([]byte, 64)}),
		"apikey":      appendAPIKeyRec(nil, orgOf(1), &h, 3),
		"field":       appendFieldRec(nil, 7, []byte(`"35.00"`)),
		"decision":    appendDecisionRec(nil, &decisionRec{createdAt: 1, verified: true, score: -2, csid: []byte("c"), userID: []byte("u"), response: []byte("{}")}),
		"idempotency": appendIdempotencyRec(nil, &h, "01ARZ3NDEKTSV4RRFFQ69G5FAV"),
	}
}

// parseAny runs every parser over v; none may panic, whatever v holds.
func parseAny(v []byte) (errs []error) {
	var s sessionRec
	var o orgRec
	var d decisionRec
	errs = append(errs, parseSessionRec(v, &s), parseOrgRec(v, &o), parseDecisionRec(v, &d))
	_, _, _, err := parseAPIKeyRec(v)
	errs = append(errs, err)
	_, _, err = parseFieldRec(v)
	errs = append(errs, err)
	_, _, err = parseIdempotencyRec(v)
	errs = append(errs, err)
	decodeKey(v)
	return errs
}

func TestRecordsRoundTrip(t *testing.T) {
	rs := sampleRecords()
	var s sessionRec
	check(t, parseSessionRec(rs["session"], &s))
	if !s.final || !s.aggApart || s.received != 5 || s.scored != 3 || string(s.userID) != "user" || string(s.action) != "wire" || s.aggregate != nil || s.tokenHash[2] != 3 {
		t.Fatalf("session %+v", s)
	}
	check(t, parseSessionRec(rs["session-inline"], &s))
	if !s.final || s.aggApart || s.received != 5 || s.scored != 3 || string(s.userID) != "user" || string(s.action) != "wire" || string(s.aggregate) != "agg" || s.tokenHash[2] != 3 {
		t.Fatalf("session, format 01 %+v", s)
	}
	check(t, parseSessionRec(rs["tombstone"], &s))
	if !s.tombstone || s.expiresAt != 2 {
		t.Fatalf("tombstone %+v", s)
	}
	var o orgRec
	check(t, parseOrgRec(rs["org"], &o))
	if string(o.name) != "acme" || string(o.cid) != "cid_x" || string(o.policy) != "{}" || len(o.certs) != 64 {
		t.Fatalf("org %+v", o)
	}
	var d decisionRec
	check(t, parseDecisionRec(rs["decision"], &d))
	if !d.verified || d.score != -2 || string(d.response) != "{}" {
		t.Fatalf("decision %+v", d)
	}
}

// TestCorruptRecordsNoPanic: every truncation and every single-byte change
// of every valid record parses to an error or a value, never a panic; and
// truncations of the fixed-size parts are errors.
func TestCorruptRecordsNoPanic(t *testing.T) {
	for name, v := range sampleRecords() {
		for n := 0; n < len(v); n++ {
			parseAny(v[:n])
		}
		for i := range v {
			for _, x := range []byte{0x00, 0x01, 0x7f, 0x80, 0xff} {
				w := bytes.Clone(v)
				w[i] = x
				parseAny(w)
			}
		}
		parseAny(append(bytes.Clone(v), 0))
		// The header (tag and fixed-width parts) cut short is always an error.
		for n := 0; n < 9; n++ {
			var err error
			switch name {
			case "session", "session-inline", "tombstone":
				err = parseSessionRec(v[:n], &sessionRec{})
			case "org":
				err = parseOrgRec(v[:n], &orgRec{})
			case "apikey":
				_, _, _, err = parseAPIKeyRec(v[:n])
			case "field":
				_, _, err = parseFieldRec(v[:n])
			case "decision":
				err = parseDecisionRec(v[:n], &decisionRec{})
			case "idempotency":
				_, _, err = parseIdempotencyRec(v[:n])
			}
			if err == nil {
				t.Errorf("%s cut to %d bytes parsed", name, n)
			}
		}
	}
	// Trailing bytes after a structured record are corruption too.
	for _, name := range []string{"session", "tombstone", "org", "apikey"} {
		if errs := parseAny(append(sampleRecords()[name], 0)); errs[0] == nil && errs[1] == nil && errs[3] == nil {
			t.Errorf("%s with a trailing byte parsed", name)
		}
	}
}

func FuzzParseRecords(f *testing.F) {
	for _, v := range sampleRecords() {
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, v []byte) {
		parseAny(v)
		// Whatever parses re-encodes to something that parses the same.
		var s, s2 sessionRec
		if parseSessionRec(v, &s) == nil {
			enc := appendSessionRec
			if v[0] == tagV1 {
				enc = appendSessionRecInline // the form written before, and the cache's
			}
			if err := parseSessionRec(enc(nil, &s), &s2); err != nil || fmt.Sprint(s) != fmt.Sprint(s2) {
				t.Fatalf("session %+v re-parses as %+v, %v", s, s2, err)
			}
		}
	})
}

// TestCorruptRecordsInDB: damaged values under real keys answer ErrCorrupt
// through the API.
func TestCorruptRecordsInDB(t *testing.T) {
	db, c := openMem(t)
	f := writeFixture(t, db)
	org := f.org.ID
	csid := f.sess.CSID
	put := func(k, v []byte) {
		t.Helper()
		check(t, db.pdb.Set(k, v, pebble.Sync))
	}
	garbage := []byte{0xde, 0xad}

	put(appendFieldKey(nil, org, csid, "amount"), garbage)
	_, err := db.Fields(f.org.ID, csid, nil)
	wantErr(t, err, ErrCorrupt)

	// A frame that does not decompress is passed as nil and counted, and
	// the frames after it are still read (Frames).
	put(appendFrameKey(nil, org, csid, 1), garbage)
	// A frame that decompresses past MaxFrameBytes is refused by the
	// bounded decoder rather than allocated.
	enc, _ := zstd.NewWriter(nil)
	bomb := enc.EncodeAll(make([]byte, 2*MaxFrameBytes), nil)
	put(appendFrameKey(nil, org, csid, 0), bomb)
	var got []string
	check(t, db.Frames(f.org.ID, csid, 0, func(i uint32, raw []byte) error {
		got = append(got, fmt.Sprintf("%d:%v", i, raw == nil))
		return nil
	}))
	if strings.Join(got, " ") != "0:true 1:true 2:false" || db.DamagedFrames() != 2 {
		t.Fatalf("frames %v, damaged %d", got, db.DamagedFrames())
	}

	put(appendDecisionKey(nil, org, f.dec.ID), garbage)
	_, err = db.Decision(f.org.ID, f.dec.ID)
	wantErr(t, err, ErrCorrupt)
	_, _, err = db.Idempotent(f.org.ID, f.idem)
	wantErr(t, err, ErrCorrupt)
	put(appendIdempotencyKey(nil, org, f.idem), garbage)
	_, _, err = db.Idempotent(f.org.ID, f.idem)
	wantErr(t, err, ErrCorrupt)

	put(appendCIDKey(nil, f.org.CID), garbage)
	_, err = db.OrgByCID([]byte(f.org.CID))
	wantErr(t, err, ErrCorrupt)
	h := sha256Of(f.key)
	put(appendAPIKeyKey(nil, &h), garbage)
	_, err = db.OrgByAPIKey([]byte(f.key))
	wantErr(t, err, ErrCorrupt)
	put(appendOrgKey(nil, org), garbage)
	_, err = db.OrgByID(f.org.ID)
	wantErr(t, err, ErrCorrupt)
	_, err = db.Orgs()
	wantErr(t, err, ErrCorrupt)
	wantErr(t, db.SetOrgPolicy(f.org.ID, nil), ErrCorrupt)

	put(appendSessionKey(nil, org, csid), garbage)
	_, err = db.Session(f.org.ID, csid)
	wantErr(t, err, ErrCorrupt)
	_, err = db.AppendEvents(f.org.ID, csid, nil, [][]byte{{1}}, false)
	wantErr(t, err, ErrCorrupt)
	wantErr(t, db.SaveAggregate(f.org.ID, csid, nil, 0), ErrCorrupt)

	// The sweep still clears a corrupt session, reports it, and leaves a
	// tombstone behind.
	c.Advance(DefaultSessionTTL)
	n, err := db.SweepExpired(0)
	wantErr(t, err, ErrCorrupt)
	if n != 1 || countKind(t, db, kindField) != 0 || countKind(t, db, kindFrame) != 0 || countKind(t, db, kindExpiry) != 0 {
		t.Fatalf("swept %d; left %d fields, %d frames", n, countKind(t, db, kindField), countKind(t, db, kindFrame))
	}
	_, err = db.Session(f.org.ID, csid)
	wantErr(t, err, ErrExpired)
	// An undecodable expiry entry is dropped, not read forever.
	put([]byte{kindExpiry, 0, 0}, nil)
	_, err = db.SweepExpired(0)
	wantErr(t, err, ErrCorrupt)
	if countKind(t, db, kindExpiry) != 0 {
		t.Fatal("bad expiry entry kept")
	}
}

func sha256Of(s string) [32]byte { return sha256.Sum256([]byte(s)) }
