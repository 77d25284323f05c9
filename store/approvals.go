package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/countersign/countersign/engine/approval"
)

// ApprovalIDPrefix starts every approval id the store makes.
const (
	ApprovalIDPrefix = "apr_"
	approvalIDBytes  = 15 // 24 base32 characters: unique, not secret
)

// Errors of the approval family.
var (
	// ErrNotNew: CreateApproval was given an approval that is not as
	// approval.New makes one (pending, Version 0, with a creation time).
	ErrNotNew = errors.New("store: not a new approval (approval.New makes one: pending, Version 0)")
	// ErrIdentity: an UpdateApproval transition changed the approval's id,
	// user or creation time, which name its records; nothing was written.
	ErrIdentity = errors.New("store: a transition changed the approval's id, user or creation time")
)

// NewApprovalID returns a fresh approval id from the store's randomness,
// for the approval.Request the caller then turns into an Approval.
func (db *DB) NewApprovalID() (string, error) {
	var raw [approvalIDBytes]byte
	if err := db.random(raw[:]); err != nil {
		return "", err
	}
	return ApprovalIDPrefix + cidEncoding.EncodeToString(raw[:]), nil
}

// CreateApproval stores a, a new pending approval (approval.New made it),
// if admit lets it through. Under the user's stripe it reads the user's
// state and counts the user's pending approvals, then calls admit with the
// state and an Admission whose Pending and EarliestExpiry it has filled
// (admit sets the rest and calls approval.Admit); if admit returns nil, the
// approval, its index records and the changed state are written in one
// batch, each with Version one higher (a then has Version 1). An error of
// admit is returned as is and nothing is written. Pending approvals found
// past their expiry are not counted, and are marked expired in the same
// batch. Its approval-expiry entry (expirysweep.go) goes in the batch
// too, so the sweep marks it expired if nothing else decides it first.
// ErrNotFound if the organization has no such user, ErrExists if the
// approval id is taken.
func (db *DB) CreateApproval(org OrgID, a *approval.Approval,
	admit func(u *approval.UserState, adm *approval.Admission) error) error {
	return db.createApproval(org, a, nil, admit)
}

// CreateEmailApproval is CreateApproval for an EMAIL approval: the same
// batch writes, after approval.created, the approval.email event carrying
// link, so the link reaches the organization's notifier if and only if the
// approval exists. ErrNoLink if link has no address or URL.
func (db *DB) CreateEmailApproval(org OrgID, a *approval.Approval, link EmailLink,
	admit func(u *approval.UserState, adm *approval.Admission) error) error {
	if link.To == "" || link.URL == "" {
		return ErrNoLink
	}
	return db.createApproval(org, a, &link, admit)
}

// ErrNoLink: an EMAIL approval created without the address or URL of its
// link.
var ErrNoLink = errors.New("store: an EMAIL approval needs its link's address and URL")

func (db *DB) createApproval(org OrgID, a *approval.Approval, link *EmailLink,
	admit func(u *approval.UserState, adm *approval.Admission) error) error {
	c, err := db.begin(org, approvalArgs(a))
	if err != nil {
		return err
	}
	defer c.end()
	c.hold(db.lock(domainUser, c.org, a.UserID))
	if err := db.userExists(c, a.UserID); err != nil {
		return err
	}
	c.key = appendApprovalKey(c.key[:0], c.org, a.ID)
	if ok, err := db.has(c.key); err != nil || ok {
		if err == nil {
			err = ErrExists
		}
		return err
	}
	var u approval.UserState
	if err := db.readUserState(c, a.UserID, &u); err != nil {
		return err
	}
	c.zbuf = approval.AppendUserState(c.zbuf[:0], &u)
	b := db.pdb.NewBatch()
	adm := approval.Admission{}
	err = db.countPending(b, c, a.UserID, db.now(), &adm)
	if err == nil {
		err = admit(&u, &adm)
	}
	if err == nil {
		_, err = db.putUserState(b, c, a.UserID, &u)
	}
	if err != nil {
		_ = b.Close()
		return err
	}
	a.Version = 1
	c.val = approval.AppendApproval(c.val[:0], a)
	c.key = appendApprovalKey(c.key[:0], c.org, a.ID)
	_ = b.Set(c.key, c.val, nil)
	c.key = appendApprovalIndexKey(c.key[:0], kindApprovalByUser, c.org, a.UserID, a.CreatedAt.UnixNano(), a.ID)
	_ = b.Set(c.key, nil, nil)
	c.key = appendApprovalIndexKey(c.key[:0], kindPending, c.org, a.UserID, a.CreatedAt.UnixNano(), a.ID)
	_ = b.Set(c.key, binary.BigEndian.AppendUint64(nil, uint64(a.ExpiresAt.UnixNano())), nil)
	c.key = appendApprovalExpiryKey(c.key[:0], a.ExpiresAt, c.org, a.ID)
	_ = b.Set(c.key, nil, nil)
	err = db.addApprovalEvent(b, c, EventApprovalCreated, a)
	if err == nil && link != nil {
		err = db.addEvent(b, c, EventApprovalEmail, a, link)
	}
	if err != nil {
		_ = b.Close()
		a.Version = 0
		return err
	}
	if err := db.commitEvents(b, c); err != nil {
		a.Version = 0
		return err
	}
	return nil
}

// approvalArgs is CreateApproval's argErr: what approval.New makes, new.
func approvalArgs(a *approval.Approval) error {
	switch {
	case a.ID == "" || a.UserID == "":
		return ErrEmptyID
	case len(a.ID) > approval.MaxIDLen || len(a.UserID) > approval.MaxUserIDLen:
		return ErrKeyTooLong
	case a.Status != approval.StatusPending || a.Version != 0 || a.CreatedAt.IsZero():
		return ErrNotNew
	}
	return nil
}

// pendingEntry is one record of a user's pending index.
type pendingEntry struct {
	id      []byte
	expires time.Time
}

// pendingOf lists the user's pending index, oldest first.
func (db *DB) pendingOf(c *call, userID string) ([]pendingEntry, error) {
	var list []pendingEntry
	c.key = appendPerUserPrefix(c.key[:0], kindPending, c.org, userID)
	_, err := db.scanPage(c.key, nil, MaxPageLimit, false, func(suffix, v []byte) error {
		if len(v) != 8 || len(suffix) <= 8 {
			return ErrCorrupt
		}
		list = append(list, pendingEntry{id: bytes.Clone(suffix[8:]), expires: time.Unix(0, int64(binary.BigEndian.Uint64(v)))})
		return nil
	})
	return list, err
}

// countPending fills adm.Pending and adm.EarliestExpiry from the user's
// pending index, and adds to b the expiry of the approvals found past
// their time, which no longer count.
func (db *DB) countPending(b *pebble.Batch, c *call, userID string, now time.Time, adm *approval.Admission) error {
	list, err := db.pendingOf(c, userID)
	for _, p := range list {
		switch {
		case err != nil:
			return err
		case !now.Before(p.expires):
			err = db.settlePending(b, c, p.id, func(a *approval.Approval) { _ = a.Expire(now) })
		default:
			if adm.Pending == 0 || p.expires.Before(adm.EarliestExpiry) {
				adm.EarliestExpiry = p.expires
			}
			adm.Pending++
		}
	}
	return err
}

// cancelPending adds to b the cancellation at now of every pending
// approval of the user but except (the denied one whose Effect asked for
// it: approval.Effect.CancelOtherPending), and the removal of their
// pending index records. One found past its expiry is marked expired
// instead, as Cancel does.
func (db *DB) cancelPending(b *pebble.Batch, c *call, userID, except string, now time.Time) error {
	list, err := db.pendingOf(c, userID)
	for _, p := range list {
		if err != nil {
			return err
		}
		if string(p.id) != except {
			err = db.settlePending(b, c, p.id, func(a *approval.Approval) { _ = a.Cancel(now) })
		}
	}
	return err
}

// settlePending reads the approval id, applies end to it (Cancel, Expire),
// and adds to b the approval with Version one higher and the removal of its
// pending index record.
func (db *DB) settlePending(b *pebble.Batch, c *call, id []byte, end func(a *approval.Approval)) error {
	var a approval.Approval
	if err := readApproval(db, c, id, &a); err != nil {
		return err
	}
	end(&a)
	if a.Status == approval.StatusPending {
		return fmt.Errorf("%w: approval %q neither cancels nor expires", ErrCorrupt, id)
	}
	a.Version++
	c.val = approval.AppendApproval(c.val[:0], &a)
	_ = b.Set(c.key, c.val, nil)
	c.key = appendApprovalIndexKey(c.key[:0], kindPending, c.org, a.UserID, a.CreatedAt.UnixNano(), a.ID)
	_ = b.Delete(c.key, nil)
	return db.addApprovalEvent(b, c, EventApprovalDecided, &a)
}

// Approval reads the organization's approval into dst, reusing its slices:
// the request path's read (a long poll, the device's fetch before it
// answers). A pending approval past its expiry reads as expired (its
// DecidedAt the expiry, as approval.Expire marks it), whether or not it has
// been marked so. ErrNotFound if the organization has no such approval.
func (db *DB) Approval(org OrgID, id string, dst *approval.Approval) error {
	c, err := db.begin(org, lookupID(id))
	if err != nil {
		return err
	}
	defer c.end()
	if err := readApproval(db, c, id, dst); err != nil {
		return err
	}
	if dst.StatusAt(db.now()) == approval.StatusExpired {
		_ = dst.Expire(db.now())
	}
	return nil
}

// readApproval decodes the approval id into a, leaving its key in c.key.
// The newest version is read: an approval is rewritten by its transitions.
func readApproval[T string | []byte](db *DB, c *call, id T, a *approval.Approval) error {
	c.key = appendApprovalKey(c.key[:0], c.org, id)
	v, closer, err := db.read(c.key)
	if err != nil {
		return err
	}
	err = approval.DecodeApproval(v, a)
	if err == nil && a.ID != string(id) {
		// The index records are named by the record's id: one stored under
		// another id would be unreachable from them.
		err = fmt.Errorf("it holds id %q", a.ID)
	}
	if cerr := closer.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		a.Reset()
		return fmt.Errorf("%w: approval %q: %v", ErrCorrupt, id, err)
	}
	return nil
}

// UpdateApproval is a transition of an approval (approval.Answer, Cancel,
// DecideOTP, DecideLink, RedeemToken, ...) as a compare-and-set: under the
// stripe of the approval's user, it reads the approval into a and the
// user's state into u, calls apply with them, and writes each one apply
// changed, whatever apply returns (a refused answer can still count a
// failure, or mark the approval expired), with Version one higher, and
// only if the stored versions are still the ones read (else ErrConflict
// and nothing is written). So of two answers to one approval, exactly one
// applies: the second finds it decided. An approval that leaves pending
// leaves the user's pending index; when the Effect asks for it
// (CancelOtherPending, on a denial), the user's other pending approvals are
// cancelled in the same batch. It returns apply's Effect and error, or the
// store's error when the write failed. ErrNotFound if the organization has
// no such approval.
func (db *DB) UpdateApproval(org OrgID, id string, a *approval.Approval, u *approval.UserState,
	apply func(a *approval.Approval, u *approval.UserState) (approval.Effect, error)) (approval.Effect, error) {
	c, err := db.begin(org, lookupID(id))
	if err != nil {
		return approval.Effect{}, err
	}
	defer c.end()
	// The approval names its user, whose stripe serialises the update; the
	// user never changes, so the record read before the lock names the
	// right one, and is read again under it.
	if err := readApproval(db, c, id, a); err != nil {
		return approval.Effect{}, err
	}
	return db.updateApproval(c, a.UserID, id, a, u, apply)
}

// UpdateApprovalOf is UpdateApproval for a caller that knows whose
// approval it must be: a device answering for its user. It takes that
// user's stripe at once and reads the approval once, under it, where
// UpdateApproval reads it first to learn whose stripe to take (one read
// fewer: PERF.md, "Approvals"). An approval of another user is ErrNotFound,
// exactly as a missing one, and apply is not called, so nothing is
// written.
func (db *DB) UpdateApprovalOf(org OrgID, userID, id string, a *approval.Approval, u *approval.UserState,
	apply func(a *approval.Approval, u *approval.UserState) (approval.Effect, error)) (approval.Effect, error) {
	argErr := lookupID(id)
	if argErr == nil {
		argErr = lookupUserID(userID)
	}
	c, err := db.begin(org, argErr)
	if err != nil {
		return approval.Effect{}, err
	}
	defer c.end()
	return db.updateApproval(c, userID, id, a, u, apply)
}

// updateApproval is UpdateApproval's compare-and-set under the stripe of
// userID, whose approval id must be.
func (db *DB) updateApproval(c *call, userID, id string, a *approval.Approval, u *approval.UserState,
	apply func(a *approval.Approval, u *approval.UserState) (approval.Effect, error)) (approval.Effect, error) {
	c.hold(db.lock(domainUser, c.org, userID))
	if err := readApproval(db, c, id, a); err != nil {
		return approval.Effect{}, err
	}
	if a.UserID != userID {
		a.Reset()
		return approval.Effect{}, ErrNotFound
	}
	if err := db.readUserState(c, a.UserID, u); err != nil {
		return approval.Effect{}, err
	}
	c.zbuf = approval.AppendUserState(c.zbuf[:0], u)
	before := approval.AppendApproval(nil, a)
	wasPending, version, userVersion := a.Status == approval.StatusPending, a.Version, u.Version
	// Keep the identity apply must not change: the keys are made from it.
	approvalID, userID, createdAt := a.ID, a.UserID, a.CreatedAt

	eff, applyErr := apply(a, u)

	a.Version, u.Version = version, userVersion
	if a.ID != approvalID || a.UserID != userID || !a.CreatedAt.Equal(createdAt) {
		return eff, ErrIdentity
	}
	b := db.pdb.NewBatch()
	abort := func(err error) (approval.Effect, error) {
		_ = b.Close()
		a.Version, u.Version = version, userVersion
		return eff, err
	}
	stateChanged, err := db.putUserState(b, c, userID, u)
	if err != nil {
		return abort(err)
	}
	after := approval.AppendApproval(nil, a)
	approvalChanged := !bytes.Equal(before, after)
	if approvalChanged {
		c.key = appendApprovalKey(c.key[:0], c.org, approvalID)
		if err := db.checkVersion(c.key, approvalVersionAt, version); err != nil {
			return abort(err)
		}
		a.Version++
		after = approval.AppendApproval(after[:0], a)
		_ = b.Set(c.key, after, nil)
		if wasPending && a.Status != approval.StatusPending {
			c.key = appendApprovalIndexKey(c.key[:0], kindPending, c.org, userID, createdAt.UnixNano(), approvalID)
			_ = b.Delete(c.key, nil)
			if err := db.addApprovalEvent(b, c, EventApprovalDecided, a); err != nil {
				return abort(err)
			}
		}
	}
	cancelOthers := applyErr == nil && eff.CancelOtherPending
	if cancelOthers {
		now := a.DecidedAt
		if now.IsZero() {
			now = db.now()
		}
		if err := db.cancelPending(b, c, userID, approvalID, now); err != nil {
			return abort(err)
		}
	}
	if !stateChanged && !approvalChanged && !cancelOthers {
		_ = b.Close()
		return eff, applyErr
	}
	if err := db.commitEvents(b, c); err != nil {
		a.Version, u.Version = version, userVersion
		return eff, err
	}
	return eff, applyErr
}

// PendingApprovals returns the user's approvals that are pending now,
// oldest first, reusing dst's elements: what the device's long poll
// delivers. Approvals past their expiry are left out. A user the
// organization does not have has none.
func (db *DB) PendingApprovals(org OrgID, userID string, dst []approval.Approval) ([]approval.Approval, error) {
	dst = dst[:0]
	c, err := db.begin(org, lookupUserID(userID))
	if err != nil {
		return dst, err
	}
	defer c.end()
	now := db.now()
	list, err := db.pendingOf(c, userID)
	for _, p := range list {
		if err != nil || !now.Before(p.expires) {
			continue
		}
		if len(dst) < cap(dst) {
			dst = dst[:len(dst)+1]
		} else {
			dst = append(dst, approval.Approval{})
		}
		a := &dst[len(dst)-1]
		if err = readApproval(db, c, p.id, a); err == nil && a.StatusAt(now) != approval.StatusPending {
			// Decided after the index was read: this read holds no lock.
			dst = dst[:len(dst)-1]
		}
	}
	return dst, err
}

// ApprovalsOfUser returns a page of the user's approvals, newest first,
// whatever their status (the audit trail), and the cursor of the next page
// ("" after the last). Expired ones read as expired, as Approval reads them.
func (db *DB) ApprovalsOfUser(org OrgID, userID string, limit int, cursor string) ([]approval.Approval, string, error) {
	c, after, err := db.beginUserPage(org, userID, cursor)
	if err != nil {
		return nil, "", err
	}
	defer c.end()
	var ids [][]byte
	c.key = appendPerUserPrefix(c.key[:0], kindApprovalByUser, c.org, userID)
	next, err := db.scanPage(c.key, after, limit, true, func(suffix, _ []byte) error {
		if len(suffix) <= 8 {
			return ErrCorrupt
		}
		ids = append(ids, bytes.Clone(suffix[8:]))
		return nil
	})
	if err != nil {
		return nil, "", err
	}
	now := db.now()
	out := make([]approval.Approval, len(ids))
	for i, id := range ids {
		if err := readApproval(db, c, id, &out[i]); err != nil {
			return nil, "", err
		}
		if out[i].StatusAt(now) == approval.StatusExpired {
			_ = out[i].Expire(now)
		}
	}
	return out, next, nil
}
