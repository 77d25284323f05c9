package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// adversarialIDs are ids built from the bytes a naive layout would use as
// separators or that look like length prefixes, around the one-byte uvarint
// boundary (127/128).
func adversarialIDs(rng *rand.Rand, n int) []string {
	alphabet := []byte{0x00, 0x01, 0x02, 0x10, 0x11, 0x12, 0x7f, 0x80, 0xff, '/', ':', 'a'}
	ids := []string{"a", "\x00", "\xff", "a\x00", "\x01a", "\x02ab", "\x00\x00", strings127(), strings127() + "x"}
	seen := map[string]bool{}
	for _, id := range ids {
		seen[id] = true
	}
	for len(ids) < n {
		b := make([]byte, 1+rng.IntN(6))
		if rng.IntN(8) == 0 {
			b = make([]byte, 126+rng.IntN(4))
		}
		for i := range b {
			b[i] = alphabet[rng.IntN(len(alphabet))]
		}
		if !seen[string(b)] {
			seen[string(b)] = true
			ids = append(ids, string(b))
		}
	}
	return ids
}

func strings127() string { return string(bytes.Repeat([]byte{0x80}, 127)) }

func orgOf(b byte) OrgID { return OrgID{0xff, 0, b, 0x11, 0x12, 0x10, 0x01, b} }

// TestKindsDistinct: every kind is its own first byte, so no two kinds'
// keys can ever meet, whatever follows.
func TestKindsDistinct(t *testing.T) {
	kinds := []byte{kindMeta, kindOrg, kindOrgByCID, kindOrgByKey, kindSession, kindField, kindFrame, kindExpiry, kindFrameSeq, kindTemplate, kindDecision, kindIdempotency}
	seen := map[byte]bool{}
	for _, k := range kinds {
		if seen[k] {
			t.Fatalf("kind %#x used twice", k)
		}
		seen[k] = true
	}
	org, h := orgOf(1), [32]byte{}
	for want, key := range map[byte][]byte{
		kindMeta:        metaKey(),
		kindOrg:         appendOrgKey(nil, org),
		kindOrgByCID:    appendCIDKey(nil, "cid_x"),
		kindOrgByKey:    appendAPIKeyKey(nil, &h),
		kindSession:     appendSessionKey(nil, org, "c"),
		kindField:       appendFieldKey(nil, org, "c", "n"),
		kindFrame:       appendFrameKey(nil, org, "c", 7),
		kindExpiry:      appendExpiryKey(nil, 5, org, "c"),
		kindFrameSeq:    appendFrameSeqKey(nil, org, "c", 7, &h),
		kindTemplate:    appendTemplateKey(nil, org, "u"),
		kindDecision:    appendDecisionKey(nil, org, "d"),
		kindIdempotency: appendIdempotencyKey(nil, org, []byte("i")),
	} {
		p, ok := decodeKey(key)
		if !ok || p.kind != want || key[0] != want {
			t.Errorf("kind %#x: key %x decodes to %+v, %v", want, key, p, ok)
		}
	}
}

// TestKeysUnambiguous: for ids full of separator-like bytes, every key
// decodes back to exactly its parts, distinct parts give distinct keys, and
// a session's scan prefix covers that session's records and no other's.
func TestKeysUnambiguous(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	ids := adversarialIDs(rng, 60)
	orgs := []OrgID{orgOf(0), orgOf(1), {}, {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}}

	type rec struct {
		org        OrgID
		csid, name string
		index      uint32
		key        []byte
	}
	var fields, frames []rec
	keys := map[string]string{}
	add := func(key []byte, what string) {
		if prev, dup := keys[string(key)]; dup {
			t.Fatalf("%s and %s share key %x", prev, what, key)
		}
		keys[string(key)] = what
	}
	for _, org := range orgs {
		for i, csid := range ids {
			k := appendSessionKey(nil, org, csid)
			if p, ok := decodeKey(k); !ok || p.org != org || string(p.id) != csid {
				t.Fatalf("session key %x decodes to %+v %v", k, p, ok)
			}
			add(k, fmt.Sprintf("session %v/%q", org, csid))
			for _, id := range []struct {
				kind byte
				key  []byte
			}{
				{kindTemplate, appendTemplateKey(nil, org, csid)},
				{kindDecision, appendDecisionKey(nil, org, csid)},
				{kindIdempotency, appendIdempotencyKey(nil, org, []byte(csid))},
			} {
				if p, ok := decodeKey(id.key); !ok || p.kind != id.kind || p.org != org || string(p.id) != csid {
					t.Fatalf("key %x decodes to %+v %v", id.key, p, ok)
				}
				add(id.key, fmt.Sprintf("%#x %v/%q", id.kind, org, csid))
			}
			ek := appendExpiryKey(nil, int64(len(csid)), org, csid)
			if p, ok := decodeKey(ek); !ok || p.expires != int64(len(csid)) || p.org != org || string(p.id) != csid {
				t.Fatalf("expiry key %x decodes to %+v %v", ek, p, ok)
			}
			for j := 0; j < 4; j++ {
				name := ids[(i+7*j)%len(ids)]
				fk := appendFieldKey(nil, org, csid, name)
				if p, ok := decodeKey(fk); !ok || p.org != org || string(p.id) != csid || string(p.name) != name {
					t.Fatalf("field key %x decodes to %+v %v", fk, p, ok)
				}
				add(fk, fmt.Sprintf("field %v/%q/%q", org, csid, name))
				fields = append(fields, rec{org: org, csid: csid, name: name, key: fk})
				idx := []uint32{0, 1, 0x7f80ff00, 0xffffffff}[j]
				frk := appendFrameKey(nil, org, csid, idx)
				if p, ok := decodeKey(frk); !ok || p.org != org || string(p.id) != csid || p.index != idx {
					t.Fatalf("frame key %x decodes to %+v %v", frk, p, ok)
				}
				add(frk, fmt.Sprintf("frame %v/%q/%d", org, csid, idx))
				frames = append(frames, rec{org: org, csid: csid, index: idx, key: frk})
			}
		}
	}
	// Scan prefixes: a session's field (frame) prefix and its upper bound
	// enclose exactly that session's fields (frames).
	for _, org := range orgs {
		for _, csid := range ids {
			for _, set := range []struct {
				kind byte
				recs []rec
			}{{kindField, fields}, {kindFrame, frames}} {
				lo := appendSessionPart(nil, set.kind, org, csid)
				hi := prefixEnd(nil, lo)
				for _, r := range set.recs {
					inside := bytes.Compare(r.key, lo) >= 0 && bytes.Compare(r.key, hi) < 0
					if mine := r.org == org && r.csid == csid; inside != mine {
						t.Fatalf("kind %#x: record of %v/%q inside scan of %v/%q: %v", set.kind, r.org, r.csid, org, csid, inside)
					}
				}
			}
		}
	}
}

// TestAdversarialIDsEndToEnd: sessions whose csids are prefixes of each
// other, or hold separator bytes, keep their fields and frames apart.
func TestAdversarialIDsEndToEnd(t *testing.T) {
	db, err := Open(Options{Dir: "db", FS: vfs.NewMem()})
	check(t, err)
	defer db.Close()
	o, _ := newOrg(t, db, "acme")
	ids := adversarialIDs(rand.New(rand.NewPCG(5, 6)), 30)
	for i, csid := range ids {
		newSession(t, db, o.ID, csid)
		must[uint32](t)(db.AppendEvents(o.ID, csid,
			[]FieldValue{{Key: []byte(csid), Value: fmt.Appendf(nil, "%d", i)}},
			[][]byte{fmt.Appendf(nil, "frame of %d", i)}, false))
	}
	for i, csid := range ids {
		fs := must[[]FieldValue](t)(db.Fields(o.ID, csid, nil))
		if len(fs) != 1 || string(fs[0].Key) != csid || string(fs[0].Value) != fmt.Sprint(i) {
			t.Fatalf("csid %q: fields %s", csid, fmtFields(fs))
		}
		n := 0
		check(t, db.Frames(o.ID, csid, 0, func(_ uint32, raw []byte) error {
			n++
			if string(raw) != fmt.Sprintf("frame of %d", i) {
				t.Fatalf("csid %q: frame %q", csid, raw)
			}
			return nil
		}))
		if n != 1 {
			t.Fatalf("csid %q: %d frames", csid, n)
		}
	}
}

func TestParseOrgID(t *testing.T) {
	for s, ok := range map[string]bool{
		"0123456789abcdef": true, "0123456789ABCDEF": true, "0123456789abcde": false,
		"0123456789abcdeg": false, "0123456789abcdef0": false, "": false, " 123456789abcdef": false,
	} {
		o, err := ParseOrgID(s)
		if got := err == nil; got != ok || (!ok && !errors.Is(err, ErrOrgID)) {
			t.Errorf("ParseOrgID(%q) = %v", s, err)
		}
		if ok && o.String() != string(bytes.ToLower([]byte(s))) {
			t.Errorf("round trip %q -> %s", s, o)
		}
	}
}

// TestOrgIDText: the id reads as its hex everywhere text is made of it:
// String, AppendText, and JSON and logs through MarshalText.
func TestOrgIDText(t *testing.T) {
	o := OrgID{0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef}
	if got, _ := o.AppendText([]byte("org=")); string(got) != "org=0123456789abcdef" {
		t.Errorf("AppendText: %q", got)
	}
	js, err := json.Marshal(map[string]OrgID{"org": o})
	if err != nil || string(js) != `{"org":"0123456789abcdef"}` {
		t.Errorf("JSON: %s, %v", js, err)
	}
	var log bytes.Buffer
	slog.New(slog.NewTextHandler(&log, nil)).Info("x", "org", o)
	if !strings.Contains(log.String(), "org=0123456789abcdef") {
		t.Errorf("log: %s", log.String())
	}
	if o.IsZero() || !(OrgID{}).IsZero() {
		t.Error("IsZero")
	}
	if zero, err := ParseOrgID("0000000000000000"); err != nil || !zero.IsZero() {
		t.Errorf("the zero id parses as %v, %v", zero, err)
	}
}

func TestPrefixEnd(t *testing.T) {
	for in, want := range map[string]string{"a": "b", "a\xff": "b", "a\xff\xff": "b", "\x11ab": "\x11ac", "\xff": ""} {
		if got := prefixEnd(nil, []byte(in)); string(got) != want {
			t.Errorf("prefixEnd(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestDecodeKeyRejects(t *testing.T) {
	org := orgOf(1)
	bad := [][]byte{
		nil,
		{0x7e},                            // unknown kind
		{kindOrg, 1, 2, 3},                // short org
		append(appendOrgKey(nil, org), 0), // trailing byte
		{kindOrgByKey, 1},                 // short hash
		append(appendSessionKey(nil, org, "c"), 'x'),
		append([]byte{kindSession}, append(org[:], 5, 'a')...), // length beyond the key
		append([]byte{kindSession}, append(org[:], 0x80)...),   // truncated uvarint
		append(appendSessionPart(nil, kindFrame, org, "c"), 1, 2, 3),
		{kindExpiry, 0, 0, 0},
		{kindTemplate, 1},
	}
	for _, k := range bad {
		if p, ok := decodeKey(k); ok {
			t.Errorf("decodeKey(%x) = %+v, ok", k, p)
		}
	}
}
