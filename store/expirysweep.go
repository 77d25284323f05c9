package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/countersign/countersign/engine/approval"
)

// Approvals and activation codes expire in the background as sessions do
// (DESIGN "Store"): each has an entry ordered by its expiry, written with
// it, so a sweep reads only what is due.
//
//	approval-expiry    kind be64(expiresAt ms, rounded up) org approvalID  empty
//	code-expiry        kind be64(expiresAt ms) sha256(code)               empty
//
// An approval's entry is rounded up to the millisecond so that an entry
// found due always names an approval past its expiry. Expiry is still
// checked on every read: the sweep only makes the store say what the
// reads already answer, and sends what is owed for it (approval.decided,
// ApprovalExpired). Approvals and codes stored before the entries existed
// have none: they still expire on read, and approvals when the user's next
// one is created.

// ApprovalExpired is told of each approval the sweep marked expired, after
// the change is committed, so that the requests held on it, or on its
// user's pending approvals, wake. The server gives the store one
// (SetApprovalExpired): the store does not know who waits.
type ApprovalExpired func(org OrgID, approvalID, userID string)

// SetApprovalExpired sets what the sweep tells of the approvals it marks
// expired; nil tells no one.
func (db *DB) SetApprovalExpired(fn ApprovalExpired) {
	if fn == nil {
		db.expiredHook.Store(nil)
		return
	}
	db.expiredHook.Store(&fn)
}

// expiryState is the DB's part of the approval and activation code sweeps:
// whom to tell, and what they swept (Stats).
type expiryState struct {
	expiredHook          atomic.Pointer[ApprovalExpired]
	sweptApprovals       atomic.Uint64
	sweptActivationCodes atomic.Uint64
}

// appendApprovalExpiryKey orders approvals by expiry, in milliseconds
// rounded up.
func appendApprovalExpiryKey[T string | []byte](dst []byte, expiresAt time.Time, org OrgID, approvalID T) []byte {
	ms := expiresAt.UnixMilli()
	if expiresAt.After(time.UnixMilli(ms)) {
		ms++
	}
	dst = binary.BigEndian.AppendUint64(append(dst, kindApprovalExpiry), uint64(max(ms, 0)))
	return append(append(dst, org[:]...), approvalID...)
}

// appendCodeExpiryKey orders activation codes by expiry.
func appendCodeExpiryKey(dst []byte, expiresAt int64, hash []byte) []byte {
	return append(binary.BigEndian.AppendUint64(append(dst, kindCodeExpiry), uint64(max(expiresAt, 0))), hash...)
}

// SweepApprovals marks expired up to limit pending approvals past their
// expiry (limit <= 0: all that are due) and returns how many it marked.
// Each is marked as CreateApproval marks one it finds past its expiry:
// approval.Expire (DecidedAt is the expiry), Version one higher, out of
// its user's pending index, its approval.decided outbox entries, and its
// expiry entry removed, all in one batch under the user's stripe; then
// ApprovalExpired is told. An approval decided before its expiry only
// loses its entry. Unlike the session sweep's, the batch is committed as
// every approval change is (synced unless Relaxed): it holds the outbox
// entries, and ApprovalExpired tells waiters of it right after.
func (db *DB) SweepApprovals(limit int) (int, error) {
	n, err := db.sweepDue(kindApprovalExpiry, limit, db.sweepApprovalOne)
	db.sweptApprovals.Add(uint64(n))
	return n, err
}

// sweepApprovalOne handles one due approval-expiry entry, reporting true
// when it marked the approval expired.
func (db *DB) sweepApprovalOne(s *scratch, entry []byte, _ int64) (bool, error) {
	p, ok := decodeKey(entry)
	if !ok || p.kind != kindApprovalExpiry {
		return false, errors.Join(db.pdb.Delete(entry, pebble.NoSync), ErrCorrupt)
	}
	c, err := db.begin(p.org, nil)
	if err != nil {
		return false, err
	}
	defer c.end()
	var a approval.Approval
	// The user is known only from the record: read it again under the
	// user's stripe, which every change of the approval takes.
	err = readApproval(db, c, p.id, &a)
	if err == nil {
		c.hold(db.lock(domainUser, c.org, a.UserID))
		err = readApproval(db, c, p.id, &a)
	}
	switch {
	case errors.Is(err, ErrNotFound):
		return false, db.pdb.Delete(entry, pebble.NoSync)
	case errors.Is(err, ErrCorrupt):
		// Reported once: the approval's own reads report it again.
		return false, errors.Join(db.pdb.Delete(entry, pebble.NoSync), err)
	case err != nil:
		return false, err
	case a.Status != approval.StatusPending:
		return false, db.pdb.Delete(entry, pebble.NoSync)
	}
	now := db.now()
	b := db.pdb.NewBatch()
	_ = b.Delete(entry, nil)
	if a.StatusAt(now) != approval.StatusExpired {
		// An entry earlier than its approval's expiry is damage (expiry
		// times never change): put it where it belongs.
		s.key2 = appendApprovalExpiryKey(s.key2[:0], a.ExpiresAt, c.org, a.ID)
		_ = b.Set(s.key2, nil, nil)
		return false, b.Commit(pebble.NoSync)
	}
	if err := db.settlePending(b, c, p.id, func(a *approval.Approval) { _ = a.Expire(now) }); err != nil {
		_ = b.Close()
		return false, err
	}
	if err := db.commitEvents(b, c); err != nil {
		return false, err
	}
	if fn := db.expiredHook.Load(); fn != nil {
		(*fn)(c.org, a.ID, a.UserID)
	}
	return true, nil
}

// SweepActivationCodes deletes up to limit activation codes past their
// expiry (limit <= 0: all that are due) and returns how many it deleted.
// A used code is already gone (ActivateDevice deletes it with its entry);
// an entry whose code is gone only loses the entry. Each code and its
// entry go in one batch under the user's stripe, which every use of the
// code takes.
func (db *DB) SweepActivationCodes(limit int) (int, error) {
	n, err := db.sweepDue(kindCodeExpiry, limit, db.sweepActivationOne)
	db.sweptActivationCodes.Add(uint64(n))
	return n, err
}

// sweepActivationOne handles one due activation-expiry entry, reporting
// true when it deleted the code.
func (db *DB) sweepActivationOne(s *scratch, entry []byte, now int64) (bool, error) {
	p, ok := decodeKey(entry)
	if !ok || p.kind != kindCodeExpiry {
		return false, errors.Join(db.pdb.Delete(entry, pebble.NoSync), ErrCorrupt)
	}
	var hash [32]byte
	copy(hash[:], p.id)
	s.key = appendHashKey(s.key[:0], kindActivation, &hash)
	org, ac, err := db.activationRec(s.key)
	if err == nil {
		st := db.lock(domainUser, org, ac.UserID)
		defer st.Unlock()
		_, ac, err = db.activationRec(s.key)
	}
	b := db.pdb.NewBatch()
	defer func() { _ = b.Close() }()
	_ = b.Delete(entry, nil)
	switch {
	case errors.Is(err, ErrNotFound):
		return false, b.Commit(pebble.NoSync)
	case errors.Is(err, ErrCorrupt):
		// A record no lookup can use: it goes with its entry.
		_ = b.Delete(s.key, nil)
		return false, errors.Join(b.Commit(pebble.NoSync), fmt.Errorf("%w: activation code %x", err, hash[:8]))
	case err != nil:
		return false, err
	}
	if ac.ExpiresAt > now {
		s.key2 = appendCodeExpiryKey(s.key2[:0], ac.ExpiresAt, hash[:])
		_ = b.Set(s.key2, nil, nil)
		return false, b.Commit(pebble.NoSync)
	}
	_ = b.Delete(s.key, nil)
	return true, b.Commit(pebble.NoSync)
}

// activationRec reads the activation record at key and its organization.
func (db *DB) activationRec(key []byte) (OrgID, ActivationCode, error) {
	var org OrgID
	var ac ActivationCode
	err := db.get(key, func(v []byte) error {
		var err error
		org, _, err = parseActivationRec(v, &ac)
		return err
	})
	return org, ac, err
}
