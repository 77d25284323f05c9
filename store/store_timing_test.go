package store

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// openDisk opens a store with Sync durability in a temp dir: the
// configuration the server runs with, fsyncs included.
func openDisk(b *testing.B) (*DB, Org) {
	b.Helper()
	c := newClock()
	db, err := Open(Options{Dir: b.TempDir(), Now: c.Now})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = db.Close() })
	o, _ := newOrg(b, db, "bench")
	return db, o
}

// benchResponse is about the size of a validate response with a few
// sessionData items.
var benchResponse = []byte(`{"success":true,"verifiedAction":false,"decisionID":"01ARZ3NDEKTSV4RRFFQ69G5FAV","indicators":{"iv_is_values_collected":true,"iv_is_values_match":true,"iv_values_match_details":{"amount":{"matched":true,"field":"total","reason":"match"},"payeeID":{"matched":true,"field":"payeeID","reason":"match"}},"iv_is_biometrics_collected":false,"iv_is_biometrics_match":false,"iv_liveness":false,"iv_policy_violations":{"violations":[],"has_violations":false,"total_frames":0,"verified_frames":0},"iv_biometrics_info":[],"iv_user_enrolled":false,"iv_spoof_detected":false,"idv_matching":false,"driverLicenseCollected":false,"idlive_liveness":false,"regular_liveness":false},"ivScore":2000}`)

func BenchmarkPutDecisionSync(b *testing.B) {
	db, o := openDisk(b)
	d := Decision{OrgID: o.ID, CSID: "csid-bench", UserID: "user-1", CreatedAt: 1, Score: 2000, Response: benchResponse}
	idem := []byte("idem-00000000")
	b.ReportAllocs()
	b.SetBytes(int64(len(benchResponse)))
	i := 0
	for b.Loop() {
		db.AssignDecisionID(&d)
		idem = appendInt8(idem[:5], i)
		i++
		if err := db.PutDecision(&d, idem, [32]byte{1}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPutDecisionSyncParallel shows Pebble grouping the fsyncs of
// concurrent commits: throughput grows with writers although each waits
// for its own sync.
func BenchmarkPutDecisionSyncParallel(b *testing.B) {
	db, o := openDisk(b)
	b.ReportAllocs()
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		d := Decision{OrgID: o.ID, CSID: "csid-bench", UserID: "user-1", CreatedAt: 1, Score: 2000, Response: benchResponse}
		for pb.Next() {
			db.AssignDecisionID(&d)
			if err := db.PutDecision(&d, nil, [32]byte{}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkSession(b *testing.B) {
	db, o := openDisk(b)
	newSession(b, db, o.ID, "csid-bench")
	agg := make([]byte, 4200) // about a 512-d aggregate
	if _, err := db.AppendEvents(o.ID, "csid-bench", nil, [][]byte{{1}}, false); err != nil {
		b.Fatal(err)
	}
	if err := db.SaveAggregate(o.ID, "csid-bench", agg, 1); err != nil {
		b.Fatal(err)
	}
	b.Run("Session", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := db.Session(o.ID, "csid-bench"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("SessionInto", func(b *testing.B) {
		b.ReportAllocs()
		var s Session
		for b.Loop() {
			if err := db.SessionInto(o.ID, "csid-bench", &s); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkAppendEvents posts two 512-d frames (random, so incompressible)
// and two fields per call, synced.
func BenchmarkAppendEvents(b *testing.B) {
	db, o := openDisk(b)
	newSession(b, db, o.ID, "csid-bench")
	if err := db.SaveAggregate(o.ID, "csid-bench", make([]byte, 4200), 0); err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 1))
	frames := make([][]byte, 2)
	for i := range frames {
		frames[i] = make([]byte, 40+512*4)
		for j := range frames[i] {
			frames[i][j] = byte(rng.Uint32())
		}
	}
	fields := []FieldValue{{Key: []byte("amount"), Value: []byte(`"35.00"`), TS: 1}, {Key: []byte("payeeID"), Value: []byte(`6`), TS: 2}}
	b.ReportAllocs()
	b.SetBytes(int64(len(frames[0]) + len(frames[1])))
	for b.Loop() {
		if _, err := db.AppendEvents(o.ID, "csid-bench", fields, frames, false); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPointRead compares pebble.DB.Get with db.read (an iterator's
// SeekPrefixGE) for a session record that sits in an sstable under a few
// levels of other records, as a server's reads do after a while. Get
// allocates per sstable it consults; read does not, for a little more time.
func BenchmarkPointRead(b *testing.B) {
	db, o := openDisk(b)
	d := Decision{OrgID: o.ID, CSID: "c", UserID: "u", Response: benchResponse}
	for r := 0; r < 4; r++ {
		for i := 0; i < 2000; i++ {
			d.ID = fmt.Sprintf("id-%d-%04d", r, i)
			if err := db.PutDecision(&d, nil, [32]byte{}); err != nil {
				b.Fatal(err)
			}
		}
		if r == 1 {
			newSession(b, db, o.ID, "csid-bench")
		}
		if err := db.pdb.Flush(); err != nil {
			b.Fatal(err)
		}
	}
	org := o.ID
	key := appendSessionKey(nil, org, "csid-bench")
	b.Run("pebble.Get", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			v, closer, err := db.pdb.Get(key)
			if err != nil || len(v) == 0 {
				b.Fatal(err)
			}
			_ = closer.Close()
		}
	})
	b.Run("read", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			v, closer, err := db.read(key)
			if err != nil || len(v) == 0 {
				b.Fatal(err)
			}
			_ = closer.Close()
		}
	})
}

// appendInt8 appends i as 8 decimal digits, without fmt's allocations.
func appendInt8(dst []byte, i int) []byte {
	for p := 10000000; p > 0; p /= 10 {
		dst = append(dst, byte('0'+i/p%10))
	}
	return dst
}

// BenchmarkMissingKeyRead reads keys that are not there (an unused
// idempotency key, a frame's re-delivery record, a new csid) from a store
// whose records were flushed in rounds that each span the whole key range.
// Through an iterator a miss costs about the same with bloom filters as
// without (PERF.md, "Reads that stop at the newest version"): most of it is
// the iterator's own.
func BenchmarkMissingKeyRead(b *testing.B) {
	db, o := openDisk(b)
	d := Decision{OrgID: o.ID, CSID: "c", UserID: "u", Response: benchResponse}
	var id []byte
	// Rounds of interleaved ids: each flushed table spans the whole range,
	// so every table covers every key looked up.
	for r := 0; r < 6; r++ {
		for i := 0; i < 2000; i++ {
			id = appendInt8(append(appendInt8(id[:0], i), '-'), r)
			d.ID = string(id)
			if err := db.PutDecision(&d, nil, [32]byte{}); err != nil {
				b.Fatal(err)
			}
		}
		if err := db.pdb.Flush(); err != nil {
			b.Fatal(err)
		}
	}
	org := o.ID
	var keys [][]byte
	for i := 0; i < 256; i++ {
		id = appendInt8(append(appendInt8(id[:0], i*7), '-'), 9) // between stored ids
		keys = append(keys, appendDecisionKey(nil, org, string(id)))
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, _, err := db.read(keys[i%len(keys)]); err != ErrNotFound {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkValidateReads makes validate's reads through a Reader (the
// session, its fields, the user's template) of a session the cache holds
// and, with the cache off, of one read from Pebble's tables. The cached
// reads touch no Pebble, so the store's own per-call work is most of what
// they cost.
func BenchmarkValidateReads(b *testing.B) {
	for _, bc := range []struct {
		name       string
		cacheBytes int
	}{{"cached", 0}, {"pebble", -1}} {
		b.Run(bc.name, func(b *testing.B) {
			db, err := Open(Options{Dir: b.TempDir(), Now: newClock().Now, SessionCacheBytes: bc.cacheBytes})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = db.Close() })
			o, _ := newOrg(b, db, "bench")
			newSession(b, db, o.ID, "csid-bench")
			fields := []FieldValue{{Key: []byte("amount"), Value: []byte(`"35.00"`), TS: 1}, {Key: []byte("payee"), Value: []byte(`"ACME Ltd"`), TS: 2}}
			if _, err := db.AppendEvents(o.ID, "csid-bench", fields, nil, false); err != nil {
				b.Fatal(err)
			}
			if err := db.PutTemplate(o.ID, "u", []byte("template bytes")); err != nil {
				b.Fatal(err)
			}
			if err := db.pdb.Flush(); err != nil {
				b.Fatal(err)
			}
			rd := db.NewReader()
			dst := Session{Aggregate: make([]byte, 0, 64)}
			var fv []FieldValue
			var tmpl []byte
			b.ReportAllocs()
			for b.Loop() {
				if err := rd.SessionInPlace(o.ID, "csid-bench", &dst); err != nil {
					b.Fatal(err)
				}
				if fv, err = rd.SessionFields(&dst, fv[:0]); err != nil || len(fv) != 2 {
					b.Fatal(err, len(fv))
				}
				if tmpl, err = rd.TemplateInto(o.ID, dst.UserID, tmpl[:0]); err != nil {
					b.Fatal(err)
				}
				if err := rd.Close(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
