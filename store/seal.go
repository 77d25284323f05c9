package store

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"io"
	"slices"
)

// A sealed value is
//
//	version (1 byte, 1) | key id (8) | nonce (12) | AES-256-GCM ciphertext | tag (16)
//
// The version says how the rest is laid out, so that a later scheme can sit
// beside this one in the same records. The key id names the master key that
// sealed the value, so that after a key rotation a reader can tell which key
// a value needs without trying each one.
const (
	sealVersion   = 1
	sealNonceSize = 12
	sealTagSize   = 16
	sealHeader    = 1 + KeyIDSize + sealNonceSize

	// KeyIDSize is the length of a master key's id.
	KeyIDSize = 8
	// SealOverhead is how many bytes Seal adds to a plaintext: a dst with
	// len(plaintext)+SealOverhead spare capacity is sealed into without
	// allocating.
	SealOverhead = sealHeader + sealTagSize
	// MasterKeySize is the length of a master key: AES-256.
	MasterKeySize = 32
)

// keyIDLabel separates the key id's hash from any other hash of the key: the
// id is written in the clear into every sealed value.
const keyIDLabel = "countersign master key id v1\x00"

var (
	// ErrSealedShort is returned by Open for bytes too short to be a sealed
	// value, such as a truncated one.
	ErrSealedShort = errors.New("store: sealed value is too short (truncated?)")
	// ErrSealedVersion is returned by Open for a sealed value whose version
	// byte this build does not know.
	ErrSealedVersion = errors.New("store: sealed value has an unknown version")
	// ErrSealedOpen is returned by Open when the value was sealed under
	// another key, or its bytes or its additional data differ from those it
	// was sealed with.
	ErrSealedOpen = errors.New("store: sealed value does not open: wrong key or altered")
	// ErrMasterKeySize is returned by NewSealer for a key that is not
	// MasterKeySize bytes.
	ErrMasterKeySize = errors.New("store: master key must be 32 bytes")
)

// Sealer seals the secrets the store must read back (TOTP seeds, webhook
// signing secrets) with AES-256-GCM under the deployment's master key, so
// that none of them is on disk in the clear. Each value gets a fresh random
// nonce; with 96-bit nonces one key stays safe for billions of values, far
// more than a deployment's secrets.
//
// The additional data given to Seal and Open binds a value to where it is
// stored: callers pass the Pebble key of the record that holds it (record
// kind, organization id, record id), so a sealed value copied into another
// record, or another organization's, does not open there.
//
// A Sealer may be shared by goroutines: the standard library's AES-GCM keeps
// no state between calls and crypto/rand is safe for concurrent use; a nonce
// source given to NewSealer must be too.
type Sealer struct {
	aead cipher.AEAD
	id   [KeyIDSize]byte
	rand io.Reader
}

// NewSealer returns a Sealer for a MasterKeySize-byte key, drawing nonces
// from random (crypto/rand when nil). It keeps no copy of key: the caller
// may clear it.
func NewSealer(key []byte, random io.Reader) (*Sealer, error) {
	if len(key) != MasterKeySize {
		return nil, ErrMasterKeySize
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	if random == nil {
		random = rand.Reader
	}
	return &Sealer{aead: aead, id: keyID(key), rand: random}, nil
}

func keyID(key []byte) [KeyIDSize]byte {
	h := sha256.New()
	h.Write([]byte(keyIDLabel))
	h.Write(key)
	var sum [sha256.Size]byte
	var id [KeyIDSize]byte
	copy(id[:], h.Sum(sum[:0]))
	return id
}

// KeyID is the id sealed values carry: a hash of the key, not the key, and
// safe to log so an operator can tell which master key a server loaded.
func (s *Sealer) KeyID() [KeyIDSize]byte { return s.id }

// KeyIDString is KeyID in hex, for logs.
func (s *Sealer) KeyIDString() string { return hex.EncodeToString(s.id[:]) }

// Seal appends the sealed form of plaintext, bound to aad, to dst and
// returns the extended slice. It does not allocate when dst has
// len(plaintext)+SealOverhead spare capacity. plaintext and aad must not
// overlap that spare capacity.
//
// Seal panics if the nonce source fails: sealing without a fresh nonce would
// break GCM, and crypto/rand (the default) aborts the program instead of
// failing.
func (s *Sealer) Seal(dst, plaintext, aad []byte) []byte {
	dst = slices.Grow(dst, SealOverhead+len(plaintext))
	dst = append(dst, sealVersion)
	dst = append(dst, s.id[:]...)
	nonce := dst[len(dst) : len(dst)+sealNonceSize]
	if _, err := io.ReadFull(s.rand, nonce); err != nil {
		panic("store: sealing: reading a nonce: " + err.Error())
	}
	dst = dst[:len(dst)+sealNonceSize]
	return s.aead.Seal(dst, nonce, plaintext, aad)
}

// Open appends the plaintext of sealed, which Seal sealed with the same aad,
// to dst and returns the extended slice. It does not allocate when dst has
// len(sealed)-SealOverhead spare capacity. A value sealed under another key,
// altered in any byte, or opened with other aad returns ErrSealedOpen and dst
// unchanged.
func (s *Sealer) Open(dst, sealed, aad []byte) ([]byte, error) {
	if len(sealed) < SealOverhead {
		return dst, ErrSealedShort
	}
	if sealed[0] != sealVersion {
		return dst, ErrSealedVersion
	}
	// The id is no secret, but comparing it in constant time costs nothing
	// and leaves no timing difference between a wrong key and an altered
	// value.
	if subtle.ConstantTimeCompare(sealed[1:1+KeyIDSize], s.id[:]) != 1 {
		return dst, ErrSealedOpen
	}
	out, err := s.aead.Open(dst, sealed[1+KeyIDSize:sealHeader], sealed[sealHeader:], aad)
	if err != nil {
		return dst, ErrSealedOpen
	}
	return out, nil
}
