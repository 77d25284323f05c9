package store

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"strconv"
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

// Scope is what an API key may be used for. A key is never usable outside
// its scope: a backend's key cannot manage users, and an operator's admin
// key cannot move money, so leaking one does not give away the other.
type Scope uint8

// The scopes. ScopeBackend is the zero value, so that a key record written
// before keys had scopes reads as the backend key it was.
const (
	// ScopeBackend: validate, approvals and the vendor-compatible surfaces.
	ScopeBackend Scope = iota
	// ScopeAdmin: /admin/v1 only.
	ScopeAdmin
	numScopes
)

// String is the scope's name on the wire ("backend", "admin").
func (s Scope) String() string {
	switch s {
	case ScopeBackend:
		return "backend"
	case ScopeAdmin:
		return "admin"
	}
	return "scope(" + strconv.Itoa(int(s)) + ")"
}

// ErrScope: an API key scope this store does not know.
var ErrScope = errors.New("store: unknown API key scope")

// AddAPIKey issues another API key of the scope for the organization (to
// rotate keys without downtime, or to give operators an admin key). Like
// CreateOrg's, it is returned once.
func (db *DB) AddAPIKey(org OrgID, scope Scope) (string, error) {
	key, _, err := db.CreateAPIKey(org, scope, "")
	return key, err
}

// OrgByAPIKey returns the organization an API key of any scope belongs to;
// a caller that serves one scope's routes uses APIKey and checks the scope.
func (db *DB) OrgByAPIKey(key []byte) (Org, error) {
	org, _, err := db.APIKey(key)
	return org, err
}

// APIKey returns the organization an API key belongs to and the key's
// scope. The key is looked up by its SHA-256 and the stored hash is compared
// in constant time; a malformed or unknown key is ErrNotFound, with no hint
// which.
func (db *DB) APIKey(key []byte) (Org, Scope, error) {
	c, err := db.admit(apiKeyFormat(key))
	if err != nil {
		return Org{}, 0, err
	}
	defer c.end()
	hash := sha256.Sum256(key)
	var org OrgID
	var scope Scope
	c.key = appendAPIKeyKey(c.key[:0], &hash)
	err = db.get(c.key, func(v []byte) error {
		o, stored, sc, err := parseAPIKeyRec(v)
		if err != nil {
			return err
		}
		// The index lookup already matched the hash; comparing the stored
		// copy again, in constant time, keeps the check explicit and
		// independent of how the index compares keys.
		if subtle.ConstantTimeCompare(stored, hash[:]) != 1 {
			return ErrNotFound
		}
		org, scope = o, sc
		return nil
	})
	if err != nil {
		return Org{}, 0, err
	}
	o, err := db.orgByID(&c.scratch, org)
	return o, scope, err
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

// appendAPIKeyRec appends the record of a backend key, in the format keys
// had before they had scopes (tag 01), which is still how a backend key is
// written: one format per meaning, and data an older countersign wrote
// reads the same.
func appendAPIKeyRec(dst []byte, org OrgID, hash *[32]byte, createdAt int64) []byte {
	dst = append(dst, tagV1)
	dst = append(dst, org[:]...)
	dst = append(dst, hash[:]...)
	return binary.BigEndian.AppendUint64(dst, uint64(createdAt))
}

// tagAPIKeyScoped is the format of a key record of another scope than
// backend: the backend format with the scope appended.
const tagAPIKeyScoped byte = 0x02

// appendScopedAPIKeyRec appends the record of a key of the scope.
func appendScopedAPIKeyRec(dst []byte, org OrgID, hash *[32]byte, createdAt int64, scope Scope) []byte {
	if scope == ScopeBackend {
		return appendAPIKeyRec(dst, org, hash, createdAt)
	}
	start := len(dst)
	dst = appendAPIKeyRec(dst, org, hash, createdAt)
	dst[start] = tagAPIKeyScoped
	return append(dst, byte(scope))
}

func parseAPIKeyRec(v []byte) (org OrgID, hash []byte, scope Scope, err error) {
	switch {
	case len(v) == apiKeyRecLen && v[0] == tagV1:
		scope = ScopeBackend
	case len(v) == apiKeyRecLen+1 && v[0] == tagAPIKeyScoped && v[apiKeyRecLen] != byte(ScopeBackend) && v[apiKeyRecLen] < byte(numScopes):
		scope = Scope(v[apiKeyRecLen])
	default:
		return org, nil, 0, ErrCorrupt
	}
	copy(org[:], v[1:9])
	return org, v[9:41], scope, nil
}
