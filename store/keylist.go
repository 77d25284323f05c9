package store

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"

	"github.com/cockroachdb/pebble/v2"
)

// APIKeyInfo is what an operator may see of an API key: everything but the
// key. The id is derived from the key's SHA-256 (APIKeyID), so a server
// that holds a caller's key knows its id without a lookup; the prefix is
// the key's first characters, enough to recognise a key in a password
// manager and far too few to guess the rest.
type APIKeyInfo struct {
	ID        string
	Prefix    string
	Name      string
	Scope     Scope
	CreatedAt int64 // unix ms
}

// Key listing formats.
const (
	// APIKeyIDPrefix starts every key id.
	APIKeyIDPrefix = "key_"
	// apiKeyIDBytes of the key's SHA-256 name it: 80 bits, unique among an
	// organization's keys, and no help to anyone guessing a key.
	apiKeyIDBytes = 10
	// APIKeyIDLen is the length of a key id.
	APIKeyIDLen = len(APIKeyIDPrefix) + 16
	// apiKeyShownPrefix is how many characters of a key its listing shows.
	apiKeyShownPrefix = len(APIKeyPrefix) + 4
	// MaxAPIKeyName bounds a key's name.
	MaxAPIKeyName = 128
)

// ErrKeyName: an API key name longer than MaxAPIKeyName.
var ErrKeyName = errors.New("store: API key name too long")

// APIKeyID is the id of the key whose SHA-256 is hash.
func APIKeyID(hash *[32]byte) string {
	return APIKeyIDPrefix + cidEncoding.EncodeToString(hash[:apiKeyIDBytes])
}

// APIKeyIDOf is the id of key.
func APIKeyIDOf(key []byte) string {
	h := sha256.Sum256(key)
	return APIKeyID(&h)
}

func appendOrgKeyKey(dst []byte, org OrgID, id string) []byte {
	return appendUserPart(dst, kindOrgKey, org, id)
}

// setKeyListing adds the listing record of a new key to b.
func setKeyListing(b *pebble.Batch, c *scratch, org OrgID, key string, hash *[32]byte, info *APIKeyInfo) {
	info.ID, info.Prefix = APIKeyID(hash), key[:apiKeyShownPrefix]
	c.key2 = appendOrgKeyKey(c.key2[:0], org, info.ID)
	c.zbuf = appendKeyListingRec(c.zbuf[:0], info, hash)
	_ = b.Set(c.key2, c.zbuf, nil)
}

// CreateAPIKey issues an API key of the scope named name (at most
// MaxAPIKeyName bytes; the caller checks what characters it allows) for the
// organization: the key, returned once, and its listing.
func (db *DB) CreateAPIKey(org OrgID, scope Scope, name string) (string, APIKeyInfo, error) {
	var argErr error
	switch {
	case scope >= numScopes:
		argErr = ErrScope
	case len(name) > MaxAPIKeyName:
		argErr = ErrKeyName
	}
	c, err := db.begin(org, argErr)
	if err != nil {
		return "", APIKeyInfo{}, err
	}
	defer c.end()
	if err := db.orgExists(c); err != nil {
		return "", APIKeyInfo{}, err
	}
	key, hash, err := db.newSecret(APIKeyPrefix)
	if err != nil {
		return "", APIKeyInfo{}, err
	}
	info := APIKeyInfo{Name: name, Scope: scope, CreatedAt: db.nowMs()}
	b := db.pdb.NewBatch()
	c.key = appendAPIKeyKey(c.key[:0], &hash)
	c.val = appendScopedAPIKeyRec(c.val[:0], c.org, &hash, info.CreatedAt, scope)
	_ = b.Set(c.key, c.val, nil)
	setKeyListing(b, &c.scratch, c.org, key, &hash, &info)
	err = db.commit(b)
	db.orgChanged()
	if err != nil {
		return "", APIKeyInfo{}, err
	}
	return key, info, nil
}

// APIKeys returns the listings of the organization's keys, by id. A key
// issued before keys were listed (by a countersign that kept no listing)
// works as before and is not among them.
func (db *DB) APIKeys(org OrgID) ([]APIKeyInfo, error) {
	c, err := db.begin(org, nil)
	if err != nil {
		return nil, err
	}
	defer c.end()
	if err := db.orgExists(c); err != nil {
		return nil, err
	}
	c.key = appendOrgKeyKey(c.key[:0], c.org, "")
	it, err := db.pdb.NewIter(&pebble.IterOptions{LowerBound: c.key, UpperBound: prefixEnd(nil, c.key)})
	if err != nil {
		return nil, err
	}
	var out []APIKeyInfo
	for valid := it.First(); valid; valid = it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			_ = it.Close()
			return nil, err
		}
		info, _, err := parseKeyListingRec(v)
		if err != nil {
			_ = it.Close()
			return nil, err
		}
		info.ID = string(it.Key()[len(c.key):])
		out = append(out, info)
	}
	return out, it.Close()
}

// RevokeAPIKey deletes the organization's key id: from the next request
// on it is refused as an unknown key. ErrNotFound if the organization has
// no listed key of that id.
func (db *DB) RevokeAPIKey(org OrgID, id string) error {
	var argErr error
	if len(id) != APIKeyIDLen {
		argErr = ErrNotFound
	}
	c, err := db.begin(org, argErr)
	if err != nil {
		return err
	}
	defer c.end()
	c.hold(db.lock(domainOrg, c.org, ""))
	c.key = appendOrgKeyKey(c.key[:0], c.org, id)
	var hash [32]byte
	err = db.get(c.key, func(v []byte) error {
		_, h, err := parseKeyListingRec(v)
		copy(hash[:], h)
		return err
	})
	if err != nil {
		return err
	}
	b := db.pdb.NewBatch()
	_ = b.Delete(c.key, nil)
	c.key2 = appendAPIKeyKey(c.key2[:0], &hash)
	_ = b.Delete(c.key2, nil)
	err = db.commit(b)
	db.orgChanged()
	return err
}

func appendKeyListingRec(dst []byte, info *APIKeyInfo, hash *[32]byte) []byte {
	dst = append(dst, tagV1)
	dst = binary.BigEndian.AppendUint64(dst, uint64(info.CreatedAt))
	dst = append(dst, byte(info.Scope))
	dst = appendLP(dst, info.Name)
	dst = appendLP(dst, info.Prefix)
	return append(dst, hash[:]...)
}

func parseKeyListingRec(v []byte) (APIKeyInfo, []byte, error) {
	var info APIKeyInfo
	p := parser{b: v}
	if p.byte1() != tagV1 {
		return info, nil, ErrCorrupt
	}
	info.CreatedAt = p.i64()
	info.Scope = Scope(p.byte1())
	info.Name = string(p.lp())
	info.Prefix = string(p.lp())
	hash := p.take(32)
	if !p.done() || info.Scope >= numScopes {
		return info, nil, ErrCorrupt
	}
	return info, hash, nil
}
