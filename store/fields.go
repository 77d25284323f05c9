package store

import (
	"encoding/binary"

	"github.com/cockroachdb/pebble/v2"
)

// FieldValue is one collected field: its name exactly as the SDK sent it,
// the raw JSON token of its latest value, and the device's timestamp.
type FieldValue struct {
	Key, Value []byte
	TS         int64 // unix ms, device clock
}

// Fields appends the session's fields to dst, sorted by name (bytewise),
// and returns it. Keys and values are fresh copies the caller may keep.
func (db *DB) Fields(org OrgID, csid string, dst []FieldValue) ([]FieldValue, error) {
	c, err := db.begin(org, lookupID(csid))
	if err != nil {
		return dst, err
	}
	defer c.end()
	if err := db.checkSession(c, csid); err != nil {
		return dst, err
	}
	c.key = appendSessionPart(c.key[:0], kindField, c.org, csid)
	c.key2 = prefixEnd(c.key2[:0], c.key)
	// One arena for every key and value, rather than two allocations per
	// field.
	var a arena
	return db.scanFields(nil, c.key, c.key2, dst, a.copy)
}

// maxFieldArena is the largest field buffer a Session keeps between reads:
// a session with unusually large fields gets a buffer of its own, so that a
// pooled Session does not pin megabytes because of one request.
const maxFieldArena = 256 << 10

// SessionFields appends to dst the fields of the session last read into s
// (by SessionInto or SessionInPlace), sorted by name, and returns it. Keys
// and values are views of a buffer s keeps and reuses: valid until the next
// SessionFields or read into s. With s and dst reused, it allocates
// nothing.
//
// It reads the fields as they are now but does not check again that the
// session is live: the read into s did, an instant before, and skipping a
// second read of the session record is the point. A Session that no read
// filled (a zero value, Session's or CreateSession's), or whose last read
// failed, has no fields to read: ErrNotFound.
func (db *DB) SessionFields(s *Session, dst []FieldValue) ([]FieldValue, error) {
	return db.sessionFields(nil, s, dst)
}

// sessionFields reads through rd, or (nil) an iterator of its own.
func (db *DB) sessionFields(rd *Reader, s *Session, dst []FieldValue) ([]FieldValue, error) {
	u := &s.reuse
	if !u.read {
		return dst, ErrNotFound
	}
	c, err := db.admit(nil)
	if err != nil {
		return dst, err
	}
	defer c.end()
	if u.cached != nil {
		// The snapshot is never modified: its bytes can be shared.
		return append(dst, u.cached.fields...), nil
	}
	c.key = appendSessionPart(c.key[:0], kindField, u.org, u.ids[:u.csidLen])
	c.key2 = prefixEnd(c.key2[:0], c.key)
	if cap(u.arena) > maxFieldArena {
		u.arena = nil
	}
	a := u.arena[:0]
	start := len(dst)
	dst, err = db.scanFields(rd, c.key, c.key2, dst, func(b []byte) []byte {
		start := len(a)
		a = append(a, b...)
		return a[start:len(a):len(a)]
	})
	u.arena = a
	// Only from the Reader the record came from (same generation): fields
	// from an older view must not be published beside a newer record.
	if err == nil && u.fill && rd != nil && db.sc != nil && rd.gen == u.fillGen {
		u.fill = false
		c.key = appendSessionPart(c.key[:0], kindSession, u.org, u.ids[:u.csidLen])
		db.sc.fill(c.key, u.fillGen, newCachedSession(u.fillRec, dst[start:]))
	}
	return dst, err
}

// scanFields appends the field records in [lower, upper) to dst, keeping
// each name and value with keep (which copies it out of Pebble's buffer).
// It reads through rd, or (nil) an iterator of its own.
func (db *DB) scanFields(rd *Reader, lower, upper []byte, dst []FieldValue, keep func([]byte) []byte) ([]FieldValue, error) {
	if rd != nil {
		err := rd.scan(lower, upper, func(k, v []byte) error {
			ts, val, err := parseFieldRec(v)
			if err != nil {
				return err
			}
			dst = append(dst, FieldValue{Key: keep(k[len(lower):]), Value: keep(val), TS: ts})
			return nil
		})
		return dst, err
	}
	it, err := db.pdb.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return dst, err
	}
	for it.First(); it.Valid(); it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			_ = it.Close()
			return dst, err
		}
		ts, val, err := parseFieldRec(v)
		if err != nil {
			_ = it.Close()
			return dst, err
		}
		name := it.Key()[len(lower):]
		dst = append(dst, FieldValue{Key: keep(name), Value: keep(val), TS: ts})
	}
	return dst, it.Close()
}

// arena hands out copies carved from shared chunks. Each copy is capped at
// its own length, so appending to one cannot overwrite its neighbour.
type arena struct{ buf []byte }

func (a *arena) copy(b []byte) []byte {
	if cap(a.buf)-len(a.buf) < len(b) {
		a.buf = make([]byte, 0, max(len(b), 2*cap(a.buf), 512))
	}
	start := len(a.buf)
	a.buf = append(a.buf, b...)
	return a.buf[start:len(a.buf):len(a.buf)]
}

func appendFieldRec(dst []byte, ts int64, value []byte) []byte {
	dst = append(dst, tagV1)
	dst = binary.BigEndian.AppendUint64(dst, uint64(ts))
	return append(dst, value...)
}

func parseFieldRec(v []byte) (ts int64, value []byte, err error) {
	if len(v) < fieldHeaderLen || v[0] != tagV1 {
		return 0, nil, ErrCorrupt
	}
	return int64(binary.BigEndian.Uint64(v[1:9])), v[9:], nil
}
