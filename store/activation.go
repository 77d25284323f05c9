package store

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"time"
)

// Activation codes: what an operator gives a user to register a phone. The
// code is all the authenticator app presents, so it names its organization
// and user through its record; 128 random bits make it unguessable in the
// ten minutes it lives, and short enough to type.
const (
	ActivationCodePrefix = "csa_"
	ActivationCodeLen    = len(ActivationCodePrefix) + 26 // base32(16 bytes), unpadded
	ActivationCodeTTL    = 10 * time.Minute
	activationCodeBytes  = 16
)

// ErrCodeExpired: the activation code exists but its ten minutes have
// passed. Only whoever holds the code learns that, and only the code's own
// organization can have issued it.
var ErrCodeExpired = errors.New("store: activation code expired")

// MaxDevicesPerUser is how many active (not revoked) devices one user may
// have: a person has a phone or two, and every active device is listed in
// each approval.created event and may answer the user's approvals, so a
// user is not let to gather them without bound.
const MaxDevicesPerUser = 10

// ErrTooManyDevices: the user has MaxDevicesPerUser active devices; the
// activation code is not used up, and works once an operator has revoked
// one (within its ten minutes).
var ErrTooManyDevices = errors.New("store: the user has as many active devices as allowed")

// ActivationCode is what an activation code stands for: the user a device
// activated with it will belong to, and until when it can be used.
type ActivationCode struct {
	OrgID     OrgID
	UserID    string
	CreatedAt int64 // unix ms
	ExpiresAt int64 // unix ms
}

// CreateActivationCode issues a one-time code that activates one device for
// the user, for ActivationCodeTTL. The code is returned once; the store
// keeps its SHA-256, with an entry by which SweepActivationCodes deletes
// it once expired. ErrNotFound if the organization has no such user.
func (db *DB) CreateActivationCode(org OrgID, userID string) (string, ActivationCode, error) {
	c, err := db.begin(org, lookupUserID(userID))
	if err != nil {
		return "", ActivationCode{}, err
	}
	defer c.end()
	c.hold(db.lock(domainUser, c.org, userID))
	c.key = appendUserKey(c.key[:0], c.org, userID)
	if ok, err := db.has(c.key); err != nil || !ok {
		if err == nil {
			err = ErrNotFound
		}
		return "", ActivationCode{}, err
	}
	var raw [activationCodeBytes]byte
	if err := db.random(raw[:]); err != nil {
		return "", ActivationCode{}, err
	}
	code := ActivationCodePrefix + cidEncoding.EncodeToString(raw[:])
	hash := sha256.Sum256([]byte(code))
	now := db.nowMs()
	ac := ActivationCode{OrgID: org, UserID: userID, CreatedAt: now, ExpiresAt: now + ActivationCodeTTL.Milliseconds()}
	c.key = appendHashKey(c.key[:0], kindActivation, &hash)
	c.val = appendActivationRec(c.val[:0], c.org, &hash, &ac)
	b := db.pdb.NewBatch()
	_ = b.Set(c.key, c.val, nil)
	c.key = appendCodeExpiryKey(c.key[:0], ac.ExpiresAt, hash[:])
	_ = b.Set(c.key, nil, nil)
	if err := db.commit(b); err != nil {
		return "", ActivationCode{}, err
	}
	return code, ac, nil
}

// LookupActivationCode returns what the code stands for, without using it.
// ErrNotFound for a malformed, unknown or used code, ErrCodeExpired for one
// past its time.
func (db *DB) LookupActivationCode(code []byte) (ActivationCode, error) {
	c, err := db.admit(activationCodeFormat(code))
	if err != nil {
		return ActivationCode{}, err
	}
	defer c.end()
	hash := sha256.Sum256(code)
	ac, _, err := db.activationCode(c, &hash)
	return ac, err
}

// activationCode reads the code's record, leaving its key in c.key, and
// answers ErrCodeExpired for one past its time, with the organization in
// either case.
func (db *DB) activationCode(c *call, hash *[32]byte) (ActivationCode, OrgID, error) {
	var ac ActivationCode
	var org OrgID
	c.key = appendHashKey(c.key[:0], kindActivation, hash)
	err := db.get(c.key, func(v []byte) error {
		var stored []byte
		var err error
		org, stored, err = parseActivationRec(v, &ac)
		if err == nil && subtle.ConstantTimeCompare(stored, hash[:]) != 1 {
			err = ErrNotFound
		}
		return err
	})
	if err != nil {
		return ActivationCode{}, org, err
	}
	ac.OrgID = org
	if db.nowMs() >= ac.ExpiresAt {
		return ac, org, ErrCodeExpired
	}
	return ac, org, nil
}

// activationCodeFormat is the argErr of the calls that take a code: the
// format is public, so a string not in it is refused before any lookup.
func activationCodeFormat(code []byte) error {
	if len(code) != ActivationCodeLen || !bytes.HasPrefix(code, []byte(ActivationCodePrefix)) {
		return ErrNotFound
	}
	return nil
}

// ActivateDevice registers a device for the user the activation code was
// issued to and returns it with its device token, which is shown once and
// stored as SHA-256. The device, its token and per-user index records, the
// user's device count and the consumption of the code are one batch, under
// the user's stripe: of two activations with one code exactly one
// succeeds, and a code is never used without its device being stored.
// ErrNotFound for a malformed, unknown or used code, or a user deleted
// since; ErrCodeExpired for an expired one (which is then removed);
// ErrTooManyDevices when the user has MaxDevicesPerUser active ones; the
// approval package's ErrPublicKey for a key no signature can be trusted
// under.
func (db *DB) ActivateDevice(code []byte, a *DeviceActivation) (Device, string, error) {
	argErr := activationCodeFormat(code)
	if argErr == nil {
		argErr = a.check()
	}
	c, err := db.admit(argErr)
	if err != nil {
		return Device{}, "", err
	}
	defer c.end()
	hash := sha256.Sum256(code)
	ac, org, err := db.activationCode(c, &hash)
	if err != nil && !errors.Is(err, ErrCodeExpired) {
		return Device{}, "", err
	}
	// The code's user is known only from its record: read it again under
	// the user's stripe, which every use of the code takes.
	c.org = org
	c.hold(db.lock(domainUser, org, ac.UserID))
	if ac, _, err = db.activationCode(c, &hash); err != nil {
		if errors.Is(err, ErrCodeExpired) {
			err = errors.Join(db.dropActivationCode(c.key), err)
		}
		return Device{}, "", err
	}
	codeKey := bytes.Clone(c.key)
	c.key = appendUserKey(c.key[:0], org, ac.UserID)
	if ok, err := db.has(c.key); err != nil || !ok {
		if err == nil {
			err = errors.Join(db.dropActivationCode(codeKey), ErrNotFound)
		}
		return Device{}, "", err
	}
	id, err := db.newDeviceID()
	if err != nil {
		return Device{}, "", err
	}
	token, tokenHash, err := db.newSecret(DeviceTokenPrefix)
	if err != nil {
		return Device{}, "", err
	}
	d := Device{
		OrgID: ac.OrgID, ID: id, UserID: ac.UserID,
		TokenHash: tokenHash, Platform: a.Platform, AppVersion: a.AppVersion, Model: a.Model,
		PushToken: a.PushToken, Jailbroken: a.Jailbroken, CreatedAt: db.nowMs(),
	}
	copy(d.PublicKey[:], a.PublicKey)
	c.key = appendDeviceKey(c.key[:0], org, id)
	// Ids are random and wide enough never to collide; checking turns
	// "never" into "cannot" on a path that is not hot.
	if ok, err := db.has(c.key); err != nil || ok {
		if err == nil {
			err = ErrExists
		}
		return Device{}, "", err
	}
	b := db.pdb.NewBatch()
	c.val = appendDeviceRec(c.val[:0], &d)
	_ = b.Set(c.key, c.val, nil)
	c.key = appendHashKey(c.key[:0], kindDeviceByToken, &tokenHash)
	c.val = appendTokenRec(c.val[:0], org, &tokenHash, id)
	_ = b.Set(c.key, c.val, nil)
	c.key = appendDeviceByUserKey(c.key[:0], org, ac.UserID, id)
	_ = b.Set(c.key, nil, nil)
	_ = b.Delete(codeKey, nil)
	c.key = appendCodeExpiryKey(c.key[:0], ac.ExpiresAt, hash[:])
	_ = b.Delete(c.key, nil)
	c.org = org
	if err := db.setNewTOTPSeed(b, c, ac.UserID); err != nil {
		_ = b.Close()
		return Device{}, "", err
	}
	if err := db.addDevices(b, c, ac.UserID, +1); err != nil {
		_ = b.Close()
		return Device{}, "", err
	}
	err = db.commit(b)
	// A new token has no entry, but every write of a device drops its
	// token's, so that no fill begun before it survives (devicecache.go).
	db.dropDevice(&tokenHash)
	if err != nil {
		return Device{}, "", err
	}
	return d, token, nil
}

// dropActivationCode deletes a code that can no longer be used.
func (db *DB) dropActivationCode(key []byte) error {
	b := db.pdb.NewBatch()
	_ = b.Delete(key, nil)
	return db.commit(b)
}

// appendActivationRec is an activation record: the organization, the
// code's hash again (compared in constant time on lookup), the times, the
// user id.
func appendActivationRec(dst []byte, org OrgID, hash *[32]byte, ac *ActivationCode) []byte {
	dst = append(append(dst, tagV1), org[:]...)
	dst = append(dst, hash[:]...)
	dst = binary.BigEndian.AppendUint64(dst, uint64(ac.CreatedAt))
	dst = binary.BigEndian.AppendUint64(dst, uint64(ac.ExpiresAt))
	return append(dst, ac.UserID...)
}

func parseActivationRec(v []byte, ac *ActivationCode) (org OrgID, hash []byte, err error) {
	p := parser{b: v}
	tag := p.byte1()
	copy(org[:], p.take(8))
	hash = p.take(32)
	ac.CreatedAt, ac.ExpiresAt = p.i64(), p.i64()
	userID := p.rest()
	if tag != tagV1 || !p.done() || len(userID) == 0 {
		return org, nil, ErrCorrupt
	}
	ac.UserID = string(userID)
	return org, hash, nil
}
