package store

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// sweepChunk is how many expiry entries one pass of the sweep reads before
// working on them, so its iterator is short-lived and its memory bounded.
const sweepChunk = 256

// SweepExpired removes the fields, frames (with their frame-seq records)
// and aggregate (its own record, or inline in the session record) of up to limit sessions that have expired (limit <= 0: all
// of them), and returns how many it swept. Each swept session's record becomes a tombstone, so its csid
// stays used and it keeps answering ErrExpired.
//
// Sweep commits are not synced, even with Sync durability: a sweep lost in a
// crash is redone by the next one, because the expiry entry goes in the same
// batch as the deletions.
func (db *DB) SweepExpired(limit int) (int, error) {
	return db.sweepDue(kindExpiry, limit, db.sweepOne)
}

// sweepOne sweeps the session of one expiry key and deletes the key. It
// reports whether a live session was turned into a tombstone. A corrupt
// session record is swept too (its frames by range, since their count is
// unreadable) and reported as ErrCorrupt.
func (db *DB) sweepOne(s *scratch, expiryKey []byte, now int64) (bool, error) {
	p, ok := decodeKey(expiryKey)
	if !ok || p.kind != kindExpiry {
		// Undecodable: remove it, or it would be read first by every sweep.
		return false, errors.Join(db.pdb.Delete(expiryKey, pebble.NoSync), ErrCorrupt)
	}
	csid := string(p.id)
	st := db.lock(domainSession, p.org, csid)
	defer st.Unlock()

	s.key = appendSessionKey(s.key[:0], p.org, csid)
	var r sessionRec
	var corrupt error
	err := db.get(s.key, func(v []byte) error {
		if err := parseSessionRec(v, &r); err != nil {
			corrupt = fmt.Errorf("%w: session %s/%q", err, p.org, csid)
			r = sessionRec{expiresAt: p.expires}
			return nil
		}
		r.userID, r.action, r.aggregate = nil, nil, nil // alias Pebble's buffer; not needed
		return nil
	})
	b := db.pdb.NewBatch()
	defer func() { _ = b.Close() }()
	_ = b.Delete(expiryKey, nil)
	switch {
	case errors.Is(err, ErrNotFound) || (err == nil && r.tombstone):
		// Nothing left to sweep; only the entry goes.
		return false, b.Commit(pebble.NoSync)
	case err != nil:
		return false, err
	case corrupt == nil && r.expiresAt > now:
		// Not due: the entry does not match its session (expiry times never
		// change, so this is damage); drop it, the session's own entry stays.
		return false, b.Commit(pebble.NoSync)
	}

	// Point deletes rather than range deletions: a session has few keys,
	// and thousands of small range tombstones would slow every read of the
	// memtable until it is flushed.
	for _, kind := range [...]byte{kindField, kindFrameSeq} {
		s.key2 = appendSessionPart(s.key2[:0], kind, p.org, csid)
		s.val = prefixEnd(s.val[:0], s.key2)
		it, err := db.pdb.NewIter(&pebble.IterOptions{LowerBound: s.key2, UpperBound: s.val})
		if err != nil {
			return false, err
		}
		for it.First(); it.Valid(); it.Next() {
			_ = b.Delete(it.Key(), nil)
		}
		if err := it.Close(); err != nil {
			return false, err
		}
	}
	if corrupt != nil {
		s.key2 = appendSessionPart(s.key2[:0], kindFrame, p.org, csid)
		s.val = prefixEnd(s.val[:0], s.key2)
		_ = b.DeleteRange(s.key2, s.val, nil)
	} else {
		for i := uint32(0); i < r.received; i++ {
			s.key2 = appendFrameKey(s.key2[:0], p.org, csid, i)
			_ = b.Delete(s.key2, nil)
		}
	}
	if r.aggApart || corrupt != nil {
		s.key2 = appendAggregateKey(s.key2[:0], p.org, csid)
		_ = b.Delete(s.key2, nil)
	}
	tomb := sessionRec{tombstone: true, final: r.final, createdAt: r.createdAt, expiresAt: r.expiresAt}
	s.val = appendSessionRec(s.val[:0], &tomb)
	_ = b.Set(s.key, s.val, nil)
	if err := b.Commit(pebble.NoSync); err != nil {
		return false, err
	}
	if db.sc != nil {
		db.sc.write(s.key, func(*cachedSession) *cachedSession { return nil })
	}
	return true, corrupt
}

// sweepDue runs one on each entry of the expiry kind (kindExpiry,
// kindIdemExpiry, kindApprovalExpiry, kindCodeExpiry) that is due, in key order (oldest first), in chunks, until
// limit of them report true (limit <= 0: until none is due), and returns
// that count. Damage (ErrCorrupt) does not stop it; the first is returned
// after the rest is done.
func (db *DB) sweepDue(kind byte, limit int, one func(s *scratch, entry []byte, now int64) (bool, error)) (int, error) {
	c, err := db.admit(nil)
	if err != nil {
		return 0, err
	}
	defer c.end()
	now := db.nowMs()
	var upper [9]byte
	upper[0] = kind
	binary.BigEndian.PutUint64(upper[1:], uint64(max(now, -1)+1))

	swept := 0
	var firstErr error
	var due [][]byte
	for limit <= 0 || swept < limit {
		n := sweepChunk
		if limit > 0 {
			n = min(n, limit-swept)
		}
		var err error
		if due, err = db.dueExpiries(due[:0], kind, upper[:], n); err != nil {
			return swept, err
		}
		for _, k := range due {
			ok, err := one(&c.scratch, k, now)
			if err != nil {
				if !errors.Is(err, ErrCorrupt) {
					return swept, err
				}
				firstErr = cmp.Or(firstErr, err)
			}
			if ok {
				swept++
			}
		}
		if len(due) < n {
			break
		}
	}
	return swept, firstErr
}

// dueExpiries appends to dst copies of up to n expiry keys of the kind
// (kindExpiry, kindIdemExpiry) below upper.
func (db *DB) dueExpiries(dst [][]byte, kind byte, upper []byte, n int) ([][]byte, error) {
	it, err := db.pdb.NewIter(&pebble.IterOptions{LowerBound: []byte{kind}, UpperBound: upper})
	if err != nil {
		return dst, err
	}
	for it.First(); it.Valid() && len(dst) < n; it.Next() {
		dst = append(dst, bytes.Clone(it.Key()))
	}
	return dst, it.Close()
}

// RunSweeper sweeps expired sessions, approvals, activation codes and
// idempotency keys now and then
// every interval until stop is closed or the store is closed. Run it in its
// own goroutine. A pass sweeps everything due, in chunks, checking stop
// between chunks.
func (db *DB) RunSweeper(stop <-chan struct{}, every time.Duration) {
	if every <= 0 {
		every = time.Minute
	}
	t := time.NewTicker(every)
	defer t.Stop()
	defer func() {
		// A sweep's commit that meets a failed log write panics, as every
		// commit then does (deadOnFatal); the store has failed and its
		// owner learns it from Failed, so the sweeper just stops rather
		// than take the process down with a panic nobody recovers.
		if p := recover(); p != nil {
			if err, ok := p.(error); !ok || !errors.Is(err, ErrFatal) {
				panic(p)
			}
		}
	}()
	for {
		if !db.sweepAll(stop, db.SweepExpired, "sessions") ||
			!db.sweepAll(stop, db.SweepApprovals, "approvals") ||
			!db.sweepAll(stop, db.SweepActivationCodes, "activation codes") ||
			!db.sweepAll(stop, db.SweepIdempotency, "idempotency keys") {
			return
		}
		select {
		case <-stop:
			return
		case <-t.C:
		}
	}
}

// sweepAll runs sweep in chunks until nothing is due, logging what it
// swept (what: the records' name); false when the sweeper should stop.
func (db *DB) sweepAll(stop <-chan struct{}, sweep func(limit int) (int, error), what string) bool {
	total := 0
	defer func() {
		if total > 0 {
			db.log.Info("store: swept expired "+what, "count", total)
		}
	}()
	for {
		n, err := sweep(sweepChunk)
		total += n
		if errors.Is(err, ErrClosed) || errors.Is(err, ErrFatal) {
			return false // closed, or failed (Failed): nothing more to sweep
		}
		if err != nil {
			db.log.Error("store: sweep "+what, "err", err)
			return true
		}
		if n < sweepChunk {
			return true
		}
		select {
		case <-stop:
			return false
		default:
		}
	}
}
