package store

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"

	"github.com/cockroachdb/pebble/v2"

	"github.com/countersign/countersign/engine/approval"
)

// Device formats. A device token is the authenticator app's bearer
// credential on /v1/device, shown once at activation and stored as SHA-256;
// a device id names the device to operators and in approvals' records.
const (
	DeviceTokenPrefix = "csd_"
	DeviceTokenLen    = len(DeviceTokenPrefix) + 43 // base64url(32 bytes), unpadded
	DeviceIDPrefix    = "dev_"
	deviceIDBytes     = 15 // 24 base32 characters: unique, not secret
)

// Device is a phone registered to a user by activation: the Ed25519 key its
// answers are signed with, what it said about itself when it was
// activated, and whether it was revoked. Its token is never kept, only the
// token's SHA-256. A Device that DeviceByToken reuses keeps, unexported, the
// buffer its strings view.
type Device struct {
	OrgID      OrgID
	ID, UserID string
	PublicKey  [32]byte // Ed25519
	TokenHash  [32]byte // SHA-256 of the device token
	Platform   string   // "ios", "android", as the app said
	AppVersion string
	Model      string
	PushToken  string // for the organization's push webhook; "" when none
	Jailbroken bool
	CreatedAt  int64 // unix ms
	RevokedAt  int64 // unix ms; 0 while the device is active

	buf []byte
}

// Approval is the device as the approval engine checks an answer from it.
// Its PublicKey is a view of d's.
func (d *Device) Approval() approval.Device {
	return approval.Device{ID: d.ID, UserID: d.UserID, PublicKey: d.PublicKey[:]}
}

// DeviceActivation is what the authenticator app sends to activate itself,
// with the activation code (ActivateDevice).
type DeviceActivation struct {
	PublicKey  []byte // Ed25519, 32 bytes; refused by approval.CheckDevicePublicKey otherwise
	Platform   string
	AppVersion string
	Model      string
	PushToken  string
	Jailbroken bool
}

// check is ActivateDevice's verdict on a: the engine's key check, so that
// no device is registered under a key anyone can sign for, and the size
// guards.
func (a *DeviceActivation) check() error {
	if err := approval.CheckDevicePublicKey(a.PublicKey); err != nil {
		return err
	}
	for _, s := range [...]string{a.Platform, a.AppVersion, a.Model, a.PushToken} {
		if len(s) > MaxKeyBytes {
			return ErrTooLarge
		}
	}
	return nil
}

// newDeviceID is a fresh device id from the store's randomness.
func (db *DB) newDeviceID() (string, error) {
	var raw [deviceIDBytes]byte
	if err := db.random(raw[:]); err != nil {
		return "", err
	}
	return DeviceIDPrefix + cidEncoding.EncodeToString(raw[:]), nil
}

// DeviceByToken reads into dst the active device whose token this is: the
// authentication of every /v1/device call, so it allocates nothing once dst
// has grown and the device is cached. The token is looked up by its
// SHA-256, in the device cache (devicecache.go) and then in Pebble, and the
// stored hash is compared in constant time. A malformed, unknown or revoked
// token is ErrNotFound, with no hint which. dst's strings are views of a
// buffer dst keeps: valid until the next read into dst; a caller that
// keeps one longer copies it (strings.Clone).
func (db *DB) DeviceByToken(token []byte, dst *Device) error {
	c, err := db.admit(deviceTokenFormat(token))
	if err != nil {
		return err
	}
	defer c.end()
	hash := sha256.Sum256(token)
	var gen uint64
	if db.dc != nil {
		var e cachedDevice
		var ok bool
		if e, ok, gen = db.dc.get(&hash); ok {
			return checkDevice(dst, fillDevice(dst, e.org, e.id(), e.rec()), &hash)
		}
	}
	c.key = appendHashKey(c.key[:0], kindDeviceByToken, &hash)
	v, closer, err := db.read(c.key)
	if err != nil {
		return err
	}
	org, stored, id, err := parseTokenRec(v)
	if err == nil && subtle.ConstantTimeCompare(stored, hash[:]) != 1 {
		err = ErrNotFound
	}
	if err == nil {
		c.org = org
		c.key = appendDeviceKey(c.key[:0], org, id)
	}
	if cerr := closer.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	v, closer, err = db.read(c.key)
	if err != nil {
		return err
	}
	id = c.key[1+len(org):]
	err = checkDevice(dst, fillDevice(dst, org, id, v), &hash)
	if err == nil && db.dc != nil {
		if db.afterDeviceRead != nil {
			db.afterDeviceRead()
		}
		db.dc.fill(&hash, gen, org, id, v)
	}
	if cerr := closer.Close(); err == nil {
		err = cerr
	}
	return err
}

// checkDevice is DeviceByToken's verdict on the device fillDevice read
// into d (with error err): active, and stored under the token's hash.
func checkDevice(d *Device, err error, hash *[32]byte) error {
	if err == nil && (d.RevokedAt != 0 || subtle.ConstantTimeCompare(d.TokenHash[:], hash[:]) != 1) {
		err = ErrNotFound
	}
	return err
}

// deviceTokenFormat is DeviceByToken's argErr: the format is public, so a
// token not in it is refused before any lookup, which leaks nothing.
func deviceTokenFormat(token []byte) error {
	if len(token) != DeviceTokenLen || !bytes.HasPrefix(token, []byte(DeviceTokenPrefix)) {
		return ErrNotFound
	}
	return nil
}

// Device returns the organization's device, revoked or not. ErrNotFound if
// the organization has no device with that id.
func (db *DB) Device(org OrgID, deviceID string) (Device, error) {
	c, err := db.begin(org, lookupID(deviceID))
	if err != nil {
		return Device{}, err
	}
	defer c.end()
	return db.device(c, deviceID)
}

// device is a copying read: the Device owns its strings.
func (db *DB) device(c *call, deviceID string) (Device, error) {
	var d Device
	c.key = appendDeviceKey(c.key[:0], c.org, deviceID)
	err := db.get(c.key, func(v []byte) error { return fillDevice(&d, c.org, []byte(deviceID), v) })
	if err != nil {
		return Device{}, err
	}
	d.buf = nil // d's strings stay views of it, which nothing reuses now
	return d, nil
}

// DevicesOfUser returns the user's devices, revoked ones included (they
// show RevokedAt), ordered by id. A user without devices, or one the
// organization does not have, has none.
func (db *DB) DevicesOfUser(org OrgID, userID string) ([]Device, error) {
	c, err := db.begin(org, lookupUserID(userID))
	if err != nil {
		return nil, err
	}
	defer c.end()
	var ids []string
	c.key = appendPerUserPrefix(c.key[:0], kindDeviceByUser, c.org, userID)
	_, err = db.scanPage(c.key, nil, MaxPageLimit, false, func(id, _ []byte) error {
		ids = append(ids, string(id))
		return nil
	})
	if err != nil {
		return nil, err
	}
	devices := make([]Device, 0, len(ids))
	for _, id := range ids {
		d, err := db.device(c, id)
		if err != nil {
			return nil, err
		}
		devices = append(devices, d)
	}
	return devices, nil
}

// RevokeDevice revokes the device: its token stops resolving at once
// (DeviceByToken), its record stays with RevokedAt set, and the user's
// device count drops. Revoking a revoked device changes nothing.
// ErrNotFound if the organization has no such device.
func (db *DB) RevokeDevice(org OrgID, deviceID string) error {
	c, err := db.begin(org, lookupID(deviceID))
	if err != nil {
		return err
	}
	defer c.end()
	d, err := db.device(c, deviceID)
	if err != nil {
		return err
	}
	// The owner never changes, so the stripe read before the lock is the
	// one that serialises the device's writes; the record is read again
	// under it.
	c.hold(db.lock(domainUser, c.org, d.UserID))
	if d, err = db.device(c, deviceID); err != nil || d.RevokedAt != 0 {
		return err
	}
	d.RevokedAt = db.nowMs()
	b := db.pdb.NewBatch()
	c.val = appendDeviceRec(c.val[:0], &d)
	_ = b.Set(c.key, c.val, nil)
	c.key2 = appendHashKey(c.key2[:0], kindDeviceByToken, &d.TokenHash)
	_ = b.Delete(c.key2, nil)
	if err := db.addDevices(b, c, d.UserID, -1); err != nil {
		_ = b.Close()
		return err
	}
	err = db.commit(b)
	// Whatever the commit's outcome, the token is no longer known to be
	// active: the next call reads Pebble (devicecache.go).
	db.dropDevice(&d.TokenHash)
	return err
}

// deleteDevicesOf adds to b the deletion of every device of the user, with
// their token and per-user index records (DeleteUser), and returns the
// devices' token hashes, whose cache entries the caller drops after its
// commit.
func (db *DB) deleteDevicesOf(b *pebble.Batch, c *call, userID string) ([][32]byte, error) {
	c.key = appendPerUserPrefix(c.key[:0], kindDeviceByUser, c.org, userID)
	prefix := bytes.Clone(c.key)
	// Every page: nothing caps a user's device records (revoked ones stay),
	// and a device left out here would keep a token that resolves.
	var ids [][]byte
	var err error
	for after, more := []byte(nil), true; more && err == nil; {
		var cursor string
		cursor, err = db.scanPage(prefix, after, MaxPageLimit, false, func(id, _ []byte) error {
			ids = append(ids, bytes.Clone(id))
			return nil
		})
		more = cursor != ""
		if more {
			after = ids[len(ids)-1]
		}
	}
	hashes := make([][32]byte, 0, len(ids))
	for _, id := range ids {
		if err != nil {
			break
		}
		var d Device
		c.key = appendDeviceKey(c.key[:0], c.org, id)
		err = db.get(c.key, func(v []byte) error { return fillDevice(&d, c.org, id, v) })
		if err == nil {
			_ = b.Delete(c.key, nil)
			c.key2 = appendHashKey(c.key2[:0], kindDeviceByToken, &d.TokenHash)
			_ = b.Delete(c.key2, nil)
			c.key2 = append(append(c.key2[:0], prefix...), id...)
			_ = b.Delete(c.key2, nil)
			hashes = append(hashes, d.TokenHash)
		}
	}
	return hashes, err
}

// fillDevice parses a device record into d, its strings views of d.buf,
// which it reuses: the device id, then the record's strings.
func fillDevice(d *Device, org OrgID, id, v []byte) error {
	var r deviceRec
	if err := parseDeviceRec(v, &r); err != nil {
		return err
	}
	buf := d.buf[:0]
	for _, s := range [...][]byte{id, r.userID, r.platform, r.appVersion, r.model, r.pushToken} {
		buf = append(buf, s...)
	}
	at := 0
	next := func(n int) string {
		s := viewString(buf[at : at+n])
		at += n
		return s
	}
	*d = Device{
		OrgID:      org,
		ID:         next(len(id)),
		UserID:     next(len(r.userID)),
		Platform:   next(len(r.platform)),
		AppVersion: next(len(r.appVersion)),
		Model:      next(len(r.model)),
		PushToken:  next(len(r.pushToken)),
		PublicKey:  r.publicKey,
		TokenHash:  r.tokenHash,
		Jailbroken: r.jailbroken,
		CreatedAt:  r.createdAt,
		RevokedAt:  r.revokedAt,
		buf:        buf,
	}
	return nil
}

// deviceRec is a device record; slices alias the value.
type deviceRec struct {
	createdAt, revokedAt int64
	jailbroken           bool
	publicKey, tokenHash [32]byte
	userID, platform     []byte
	appVersion, model    []byte
	pushToken            []byte
}

const flagJailbroken byte = 1 << 0

func appendDeviceRec(dst []byte, d *Device) []byte {
	var flags byte
	if d.Jailbroken {
		flags |= flagJailbroken
	}
	dst = append(dst, tagV1, flags)
	dst = binary.BigEndian.AppendUint64(dst, uint64(d.CreatedAt))
	dst = binary.BigEndian.AppendUint64(dst, uint64(d.RevokedAt))
	dst = append(dst, d.PublicKey[:]...)
	dst = append(dst, d.TokenHash[:]...)
	dst = appendLP(dst, d.UserID)
	dst = appendLP(dst, d.Platform)
	dst = appendLP(dst, d.AppVersion)
	dst = appendLP(dst, d.Model)
	return append(dst, d.PushToken...)
}

func parseDeviceRec(v []byte, r *deviceRec) error {
	*r = deviceRec{}
	p := parser{b: v}
	tag, flags := p.byte1(), p.byte1()
	r.jailbroken = flags&flagJailbroken != 0
	r.createdAt = p.i64()
	r.revokedAt = p.i64()
	copy(r.publicKey[:], p.take(32))
	copy(r.tokenHash[:], p.take(32))
	r.userID = p.lp()
	r.platform = p.lp()
	r.appVersion = p.lp()
	r.model = p.lp()
	r.pushToken = p.rest()
	if tag != tagV1 || !p.done() || flags&^flagJailbroken != 0 || len(r.userID) == 0 {
		return ErrCorrupt
	}
	return nil
}

// appendTokenRec is a device-by-token record: the device's organization,
// the token's hash again (compared in constant time on lookup, as API keys'
// are) and the device id.
func appendTokenRec(dst []byte, org OrgID, hash *[32]byte, deviceID string) []byte {
	dst = append(append(dst, tagV1), org[:]...)
	return append(append(dst, hash[:]...), deviceID...)
}

func parseTokenRec(v []byte) (org OrgID, hash, deviceID []byte, err error) {
	if len(v) <= 1+8+32 || v[0] != tagV1 {
		return org, nil, nil, ErrCorrupt
	}
	copy(org[:], v[1:9])
	return org, v[9:41], v[41:], nil
}
