package store

import (
	"errors"

	"github.com/cockroachdb/pebble/v2"
)

// TOTPSeedBytes is the length of a user's TOTP seed: 160 bits, what RFC
// 4226 recommends and every authenticator app takes.
const TOTPSeedBytes = 20

// ErrNoSealer: a secret that must be read back (a TOTP seed, a webhook
// signing secret) was to be sealed or opened without a Sealer: the store
// was opened without Options.Sealer, or a webhook call was given none.
var ErrNoSealer = errors.New("store: no master key to seal secrets with")

func appendTOTPSeedKey[T string | []byte](dst []byte, org OrgID, userID T) []byte {
	return appendUserPart(dst, kindTOTPSeed, org, userID)
}

// setNewTOTPSeed adds a fresh TOTP seed for the user, sealed under the
// master key with the record's key as additional data (so it opens for
// this organization's user and no other), to b. Without a Sealer it adds
// nothing. A user has one seed: a later activation replaces it, as the
// authenticator it is shown to replaces the earlier one.
func (db *DB) setNewTOTPSeed(b *pebble.Batch, c *call, userID string) error {
	if db.sealer == nil {
		return nil
	}
	var seed [TOTPSeedBytes]byte
	if err := db.random(seed[:]); err != nil {
		return err
	}
	c.key2 = appendTOTPSeedKey(c.key2[:0], c.org, userID)
	c.zbuf = db.sealer.Seal(c.zbuf[:0], seed[:], c.key2)
	clear(seed[:])
	return b.Set(c.key2, c.zbuf, nil)
}

// TOTPSeed appends the user's TOTP seed, opened, to dst. ErrNotFound if
// the user has none (no device was activated since the store had a master
// key) or there is no such user; ErrNoSealer without a Sealer;
// ErrSealedOpen if it was sealed under another master key or altered.
func (db *DB) TOTPSeed(org OrgID, userID string, dst []byte) ([]byte, error) {
	c, err := db.begin(org, lookupUserID(userID))
	if err != nil {
		return dst, err
	}
	defer c.end()
	if db.sealer == nil {
		return dst, ErrNoSealer
	}
	c.key = appendTOTPSeedKey(c.key[:0], c.org, userID)
	out := dst
	err = db.get(c.key, func(v []byte) error {
		var err error
		out, err = db.sealer.Open(dst, v, c.key)
		return err
	})
	return out, err
}
