package store

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/base64"
	"encoding/binary"
)

// Credential formats. The prefixes make a leaked secret recognisable to
// secret scanners and to a person reading a log; the 32 random bytes behind
// them are what makes it a secret.
const (
	APIKeyPrefix       = "csk_"
	CollectTokenPrefix = "cst_"
	CIDPrefix          = "cid_"

	secretBytes = 32
	// APIKeyLen and CollectTokenLen are the lengths of the whole strings.
	APIKeyLen       = len(APIKeyPrefix) + 43 // base64url(32 bytes), unpadded
	CollectTokenLen = len(CollectTokenPrefix) + 43
	cidRandomBytes  = 15 // 24 base32 chars, 120 bits: unguessable is not needed, unique is
)

var cidEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// newSecret returns prefix + base64url(32 random bytes) and its SHA-256,
// which is all the store keeps of it.
func (db *DB) newSecret(prefix string) (string, [32]byte, error) {
	var raw [secretBytes]byte
	if err := db.random(raw[:]); err != nil {
		return "", [32]byte{}, err
	}
	buf := make([]byte, len(prefix)+base64.RawURLEncoding.EncodedLen(secretBytes))
	copy(buf, prefix)
	base64.RawURLEncoding.Encode(buf[len(prefix):], raw[:])
	return string(buf), sha256.Sum256(buf), nil
}

// AddAPIKey issues another API key for the organization (to rotate keys
// without downtime). Like CreateOrg's, it is returned once.
func (db *DB) AddAPIKey(org OrgID) (string, error) {
	c, err := db.begin(org, nil)
	if err != nil {
		return "", err
	}
	defer c.end()
	c.key = appendOrgKey(c.key[:0], c.org)
	if ok, err := db.has(c.key); err != nil || !ok {
		if err == nil {
			err = ErrNotFound
		}
		return "", err
	}
	key, hash, err := db.newSecret(APIKeyPrefix)
	if err != nil {
		return "", err
	}
	c.key = appendAPIKeyKey(c.key[:0], &hash)
	c.val = appendAPIKeyRec(c.val[:0], c.org, &hash, db.nowMs())
	b := db.pdb.NewBatch()
	_ = b.Set(c.key, c.val, nil)
	err = db.commit(b)
	db.orgChanged()
	if err != nil {
		return "", err
	}
	return key, nil
}

// OrgByAPIKey returns the organization an API key belongs to. The key is
// looked up by its SHA-256 and the stored hash is compared in constant time;
// a malformed or unknown key is ErrNotFound, with no hint which.
func (db *DB) OrgByAPIKey(key []byte) (Org, error) {
	c, err := db.admit(apiKeyFormat(key))
	if err != nil {
		return Org{}, err
	}
	defer c.end()
	hash := sha256.Sum256(key)
	var org OrgID
	c.key = appendAPIKeyKey(c.key[:0], &hash)
	err = db.get(c.key, func(v []byte) error {
		o, stored, err := parseAPIKeyRec(v)
		if err != nil {
			return err
		}
		// The index lookup already matched the hash; comparing the stored
		// copy again, in constant time, keeps the check explicit and
		// independent of how the index compares keys.
		if subtle.ConstantTimeCompare(stored, hash[:]) != 1 {
			return ErrNotFound
		}
		org = o
		return nil
	})
	if err != nil {
		return Org{}, err
	}
	return db.orgByID(&c.scratch, org)
}

// apiKeyFormat is OrgByAPIKey's argErr: ErrNotFound for a key not in the
// API key format. The format is public, so refusing a malformed key before
// any lookup leaks nothing.
func apiKeyFormat(key []byte) error {
	if len(key) != APIKeyLen || !bytes.HasPrefix(key, []byte(APIKeyPrefix)) {
		return ErrNotFound
	}
	return nil
}

func appendAPIKeyRec(dst []byte, org OrgID, hash *[32]byte, createdAt int64) []byte {
	dst = append(dst, tagV1)
	dst = append(dst, org[:]...)
	dst = append(dst, hash[:]...)
	return binary.BigEndian.AppendUint64(dst, uint64(createdAt))
}

func parseAPIKeyRec(v []byte) (org OrgID, hash []byte, err error) {
	if len(v) != apiKeyRecLen || v[0] != tagV1 {
		return org, nil, ErrCorrupt
	}
	copy(org[:], v[1:9])
	return org, v[9:41], nil
}
