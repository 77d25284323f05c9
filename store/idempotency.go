package store

import (
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// Idempotent returns the decision stored under the organization's
// idempotency key, and the hash of the request it was made for (a replay
// with a different request is the caller's 422). ErrNotFound when the key
// was never used, or not within the idempotency TTL (Options): an expired
// key is free for a new decision, the old decision stays readable by id.
func (db *DB) Idempotent(org OrgID, key []byte) (Decision, [32]byte, error) {
	return db.idempotent(nil, org, key)
}

// idempotent reads through rd, or (nil) an iterator per read.
func (db *DB) idempotent(rd *Reader, org OrgID, key []byte) (Decision, [32]byte, error) {
	c, err := db.begin(org, lookupID(key))
	if err != nil {
		return Decision{}, [32]byte{}, err
	}
	defer c.end()
	var hash [32]byte
	var id string
	c.key = appendIdempotencyKey(c.key[:0], c.org, key)
	expired := false
	err = db.getVia(rd, c.key, func(v []byte) error {
		h, did, err := parseIdempotencyRec(v)
		hash, id = h, string(did)
		at, ok := idemExpiryOf(db, did)
		expired = ok && at <= db.nowMs()
		return err
	})
	if err != nil {
		return Decision{}, [32]byte{}, err
	}
	if expired {
		return Decision{}, [32]byte{}, ErrNotFound
	}
	d, err := db.decision(rd, c, org, id)
	if errors.Is(err, ErrNotFound) {
		// Both records are written in one batch, so this is damage.
		err = ErrCorrupt
	}
	if err != nil {
		return Decision{}, [32]byte{}, err
	}
	return d, hash, nil
}

// idemExpiryOf returns when an idempotency key used for the decision id
// expires; false when it never does (no TTL, or an id that does not carry
// its time).
func idemExpiryOf[ID string | []byte](db *DB, id ID) (int64, bool) {
	ms, ok := decisionIDTime(id)
	if !ok || db.idemTTL <= 0 {
		return 0, false
	}
	return ms + db.idemTTL.Milliseconds(), true
}

// idemTaken says whether the idempotency key (its record's key) is in use:
// stored and not expired. A record that does not parse counts as taken:
// the caller then replays it, which reports the damage.
func (db *DB) idemTaken(key []byte) (bool, error) {
	taken := false
	err := db.get(key, func(v []byte) error {
		_, did, err := parseIdempotencyRec(v)
		at, ok := idemExpiryOf(db, did)
		taken = err != nil || !ok || at > db.nowMs()
		return nil
	})
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	return taken, err
}

// SweepIdempotency deletes the records of up to limit idempotency keys
// past their TTL (limit <= 0: all that are due) and returns how many it
// deleted. Each key's expiry entry goes in the same batch, so a sweep lost
// in a crash (its commits are not synced, as SweepExpired's are not) is
// redone by the next. A key whose entry is due but whose record is not
// expired (the TTL was raised, or the key was used again after expiring)
// gets an entry at its real expiry instead. Records written with no TTL
// have no entry and are kept.
func (db *DB) SweepIdempotency(limit int) (int, error) {
	return db.sweepDue(kindIdemExpiry, limit, db.sweepIdemOne)
}

// sweepIdemOne handles one due expiry entry: it deletes the entry, and the
// key's record if that has expired (reported true).
func (db *DB) sweepIdemOne(s *scratch, entry []byte, now int64) (bool, error) {
	p, ok := decodeKey(entry)
	if !ok || p.kind != kindIdemExpiry {
		return false, errors.Join(db.pdb.Delete(entry, pebble.NoSync), ErrCorrupt)
	}
	st := db.lockBytes(domainIdem, p.org, p.id)
	defer st.Unlock()
	s.key = appendIdempotencyKey(s.key[:0], p.org, p.id)
	b := db.pdb.NewBatch()
	defer func() { _ = b.Close() }()
	_ = b.Delete(entry, nil)
	deleted := false
	var corrupt error
	err := db.get(s.key, func(v []byte) error {
		_, did, err := parseIdempotencyRec(v)
		if err != nil {
			corrupt = fmt.Errorf("%w: idempotency key %s/%q", err, p.org, p.id)
			return nil // kept: Idempotent reports it where it is used
		}
		switch at, ok := idemExpiryOf(db, did); {
		case !ok: // no TTL now: kept for ever, without an entry
		case at <= now:
			_ = b.Delete(s.key, nil)
			deleted = true
		default:
			s.key2 = appendIdemExpiryKey(s.key2[:0], at, p.org, p.id)
			_ = b.Set(s.key2, nil, nil)
		}
		return nil
	})
	if err != nil && !errors.Is(err, ErrNotFound) {
		return false, err
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		return false, err
	}
	return deleted, corrupt
}

func appendIdempotencyRec(dst []byte, requestHash *[32]byte, decisionID string) []byte {
	dst = append(dst, tagV1)
	dst = append(dst, requestHash[:]...)
	return append(dst, decisionID...)
}

func parseIdempotencyRec(v []byte) (requestHash [32]byte, decisionID []byte, err error) {
	if len(v) <= idempotencyHeadLen || v[0] != tagV1 {
		return requestHash, nil, ErrCorrupt
	}
	copy(requestHash[:], v[1:33])
	return requestHash, v[33:], nil
}
