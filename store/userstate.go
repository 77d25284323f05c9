package store

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"github.com/countersign/countersign/engine/approval"
)

// ErrConflict: a record changed between the read of an update and its
// write, so the write was refused rather than lost (compare-and-set on the
// engine records' Version). Within one process the user's stripe rules it
// out; the check is there for a store shared by several countersign nodes.
var ErrConflict = errors.New("store: record changed since it was read")

// UserState reads the user's approval state (approval.UserState: failures,
// lock, token required, last TOTP step, recent approvals) into dst, reusing
// dst.Recent. A user who never had an approval has the zero state, Version
// 0. ErrNotFound if the organization has no such user.
func (db *DB) UserState(org OrgID, userID string, dst *approval.UserState) error {
	c, err := db.begin(org, lookupUserID(userID))
	if err != nil {
		return err
	}
	defer c.end()
	if err := db.userExists(c, userID); err != nil {
		return err
	}
	return db.readUserState(c, userID, dst)
}

// UpdateUserState is the read-modify-write of the user's state alone (a
// TOTP check outside an approval, an operator's unlock): under the user's
// stripe it reads the state into u, calls apply, and stores u if apply
// changed it, whatever apply returns (a wrong code is refused and counted),
// with Version one higher and only if the stored Version is still the one
// read (ErrConflict otherwise). It returns apply's error, or the store's
// when the write failed. ErrNotFound if the organization has no such user.
func (db *DB) UpdateUserState(org OrgID, userID string, u *approval.UserState, apply func(u *approval.UserState) error) error {
	c, err := db.begin(org, lookupUserID(userID))
	if err != nil {
		return err
	}
	defer c.end()
	c.hold(db.lock(domainUser, c.org, userID))
	if err := db.userExists(c, userID); err != nil {
		return err
	}
	if err := db.readUserState(c, userID, u); err != nil {
		return err
	}
	c.zbuf = approval.AppendUserState(c.zbuf[:0], u)
	version := u.Version
	applyErr := apply(u)
	u.Version = version
	b := db.pdb.NewBatch()
	changed, err := db.putUserState(b, c, userID, u)
	if err == nil && changed {
		err = db.commit(b)
	} else {
		_ = b.Close()
	}
	if err != nil {
		return err
	}
	return applyErr
}

// userExists answers ErrNotFound unless the organization has the user.
func (db *DB) userExists(c *call, userID string) error {
	c.key = appendUserKey(c.key[:0], c.org, userID)
	ok, err := db.has(c.key)
	if err == nil && !ok {
		err = ErrNotFound
	}
	return err
}

// readUserState reads the user's state into u (the zero state, Version 0,
// when there is none), leaving its key in c.key2. The newest version is
// what the state's read-modify-writes replace.
func (db *DB) readUserState(c *call, userID string, u *approval.UserState) error {
	c.key2 = appendUserStateKey(c.key2[:0], c.org, userID)
	v, closer, err := db.readNewest(c.key2)
	if errors.Is(err, ErrNotFound) {
		*u = approval.UserState{Recent: u.Recent[:0]}
		return nil
	}
	if err != nil {
		return err
	}
	err = approval.DecodeUserState(v, u)
	if cerr := closer.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("%w: user state of %q: %v", ErrCorrupt, userID, err)
	}
	return nil
}

// putUserState adds u to b if it differs from c.zbuf, the encoding it was
// read with, after checking that the stored version is still u.Version; the
// written state has Version one higher, which u then holds. It leaves the
// state's key in c.key2.
func (db *DB) putUserState(b *pebble.Batch, c *call, userID string, u *approval.UserState) (bool, error) {
	after := approval.AppendUserState(nil, u)
	if string(after) == string(c.zbuf) {
		return false, nil
	}
	c.key2 = appendUserStateKey(c.key2[:0], c.org, userID)
	if err := db.checkVersion(c.key2, userStateVersionAt, u.Version); err != nil {
		return false, err
	}
	u.Version++
	after = approval.AppendUserState(after[:0], u)
	return true, b.Set(c.key2, after, nil)
}

// Where the Version sits in the engine's records: after the format byte of
// an approval, after the format and flags bytes of a user state.
const (
	approvalVersionAt  = 1
	userStateVersionAt = 2
)

// checkVersion is the compare of compare-and-set: ErrConflict unless the
// record at key carries version want at offset at (an absent record has
// version 0).
func (db *DB) checkVersion(key []byte, at int, want uint64) error {
	v, closer, err := db.readNewest(key)
	if errors.Is(err, ErrNotFound) {
		if want == 0 {
			return nil
		}
		return ErrConflict
	}
	if err != nil {
		return err
	}
	defer closer.Close()
	if len(v) <= at {
		return ErrCorrupt
	}
	got, n := binary.Uvarint(v[at:])
	if n <= 0 {
		return ErrCorrupt
	}
	if got != want {
		return ErrConflict
	}
	return nil
}
