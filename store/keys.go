package store

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
)

// Record kinds: the first byte of every key (see the layout in doc.go).
// Numbered in groups so a new kind can join its group.
const (
	kindMeta           byte = 0x00
	kindOrg            byte = 0x01
	kindOrgByCID       byte = 0x02
	kindOrgByKey       byte = 0x03
	kindOrgDoc         byte = 0x04
	kindOrgKey         byte = 0x05
	kindSession        byte = 0x10
	kindField          byte = 0x11
	kindFrame          byte = 0x12
	kindExpiry         byte = 0x13
	kindFrameSeq       byte = 0x14
	kindAggregate      byte = 0x15
	kindTemplate       byte = 0x20
	kindDecision       byte = 0x30
	kindIdempotency    byte = 0x31
	kindIdemExpiry     byte = 0x32
	kindDecisionByUser byte = 0x33

	kindUser           byte = 0x40
	kindUserByMobile   byte = 0x41
	kindUserByEmail    byte = 0x42
	kindUserState      byte = 0x43
	kindDevice         byte = 0x44
	kindDeviceByUser   byte = 0x45
	kindDeviceByToken  byte = 0x46
	kindActivation     byte = 0x47
	kindTOTPSeed       byte = 0x48
	kindCodeExpiry     byte = 0x49
	kindApproval       byte = 0x50
	kindApprovalByUser byte = 0x51
	kindPending        byte = 0x52
	kindApprovalExpiry byte = 0x53
	kindWebhook        byte = 0x60
	kindOutbox         byte = 0x61
	kindDelivery       byte = 0x62
)

// OrgID is an organization's id: 8 random bytes, written as 16 hex
// characters (String) wherever people or JSON see it. Keys hold the bytes
// themselves, fixed width, so no separator is needed after them. Callers
// parse an id once, where it enters (a flag, a URL), and pass the value:
// comparing and hashing 8 bytes is cheaper than two strings, and a method
// taking an OrgID cannot be handed a csid by mistake. The zero OrgID names
// no organization; the store answers it ErrNotFound.
type OrgID [8]byte

// ErrOrgID: a string that is not 16 hex characters was given as an
// organization id.
var ErrOrgID = errors.New("store: an organization id is 16 hex characters")

// ParseOrgID reads an id as String writes it (upper-case hex digits are
// accepted too). Anything else is ErrOrgID.
func ParseOrgID(s string) (OrgID, error) {
	var o OrgID
	if len(s) != 2*len(o) {
		return OrgID{}, ErrOrgID
	}
	for i := range o {
		hi, ok1 := unhex(s[2*i])
		lo, ok2 := unhex(s[2*i+1])
		if !ok1 || !ok2 {
			return OrgID{}, ErrOrgID
		}
		o[i] = hi<<4 | lo
	}
	return o, nil
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// String is the id as 16 lower-case hex characters.
func (o OrgID) String() string { return hex.EncodeToString(o[:]) }

// AppendText appends String's text to dst, for encoders that append
// (encoding.TextAppender); it never fails.
func (o OrgID) AppendText(dst []byte) ([]byte, error) { return hex.AppendEncode(dst, o[:]), nil }

// MarshalText is String's text, so that JSON and log encoders write the id
// as people read it rather than as 8 numbers.
func (o OrgID) MarshalText() ([]byte, error) { return o.AppendText(nil) }

// IsZero reports whether o is the zero OrgID, which names no organization.
func (o OrgID) IsZero() bool { return o == OrgID{} }

// appendLP appends a length-prefixed part: uvarint(len(s)), s. A
// length-prefixed part is never a prefix of a different one, which is what
// keeps scan prefixes from reaching into a neighbour's records.
func appendLP[T string | []byte](dst []byte, s T) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

func metaKey() []byte { return []byte{kindMeta, 'l', 'a', 'y', 'o', 'u', 't'} }

func appendOrgKey(dst []byte, org OrgID) []byte {
	return append(append(dst, kindOrg), org[:]...)
}

func appendCIDKey[T string | []byte](dst []byte, cid T) []byte {
	return append(append(dst, kindOrgByCID), cid...)
}

func appendAPIKeyKey(dst []byte, hash *[32]byte) []byte {
	return append(append(dst, kindOrgByKey), hash[:]...)
}

// appendSessionPart appends kind, org, lp(csid): the session's key, and the
// scan prefix of its fields and frames with their own kinds.
func appendSessionPart[T string | []byte](dst []byte, kind byte, org OrgID, csid T) []byte {
	dst = append(append(dst, kind), org[:]...)
	return appendLP(dst, csid)
}

func appendSessionKey(dst []byte, org OrgID, csid string) []byte {
	return appendSessionPart(dst, kindSession, org, csid)
}

func appendFieldKey[T string | []byte](dst []byte, org OrgID, csid string, name T) []byte {
	return append(appendSessionPart(dst, kindField, org, csid), name...)
}

func appendFrameKey(dst []byte, org OrgID, csid string, index uint32) []byte {
	return binary.BigEndian.AppendUint32(appendSessionPart(dst, kindFrame, org, csid), index)
}

// appendAggregateKey is the record of a session's aggregate, apart from
// the session record (see sessionRec).
func appendAggregateKey(dst []byte, org OrgID, csid string) []byte {
	return appendSessionPart(dst, kindAggregate, org, csid)
}

// frameDigestLen is how many bytes of a frame's SHA-256 a frame-seq key
// keeps: 128 bits, so no one can make two different frames share a key.
const frameDigestLen = 16

// appendFrameSeqKey is the record that a frame with this seq and these
// stored bytes (digest: their SHA-256, of which it keeps frameDigestLen
// bytes) is held by the session: how AppendEventsOnce knows a re-delivery.
func appendFrameSeqKey(dst []byte, org OrgID, csid string, seq uint64, digest *[32]byte) []byte {
	dst = binary.BigEndian.AppendUint64(appendSessionPart(dst, kindFrameSeq, org, csid), seq)
	return append(dst, digest[:frameDigestLen]...)
}

// appendExpiryKey orders sessions by expiry so the sweep reads only those
// that are due. Negative times (a clock before 1970) sort first.
func appendExpiryKey(dst []byte, expiresAt int64, org OrgID, csid string) []byte {
	dst = binary.BigEndian.AppendUint64(append(dst, kindExpiry), uint64(max(expiresAt, 0)))
	return append(append(dst, org[:]...), csid...)
}

func appendTemplateKey(dst []byte, org OrgID, userID string) []byte {
	return append(append(append(dst, kindTemplate), org[:]...), userID...)
}

func appendDecisionKey(dst []byte, org OrgID, id string) []byte {
	return append(append(append(dst, kindDecision), org[:]...), id...)
}

func appendIdempotencyKey(dst []byte, org OrgID, key []byte) []byte {
	return append(append(append(dst, kindIdempotency), org[:]...), key...)
}

// appendIdemExpiryKey orders idempotency keys by when they expire, as
// appendExpiryKey orders sessions, so the sweep reads only those due.
func appendIdemExpiryKey(dst []byte, expiresAt int64, org OrgID, key []byte) []byte {
	dst = binary.BigEndian.AppendUint64(append(dst, kindIdemExpiry), uint64(max(expiresAt, 0)))
	return append(append(dst, org[:]...), key...)
}

// prefixEnd returns the smallest key greater than every key starting with
// prefix (the exclusive upper bound of a prefix scan), appended to dst.
func prefixEnd(dst, prefix []byte) []byte {
	dst = append(dst, prefix...)
	for i := len(dst) - 1; i >= 0; i-- {
		if dst[i] != 0xff {
			dst[i]++
			return dst[:i+1]
		}
	}
	return dst[:0] // all 0xff: no upper bound; never happens, keys start with a small kind
}

// keyParts is a key decoded by decodeKey. Fields a kind does not have are
// zero. Slices alias the key.
type keyParts struct {
	kind    byte
	org     OrgID
	id      []byte // cid, api-key hash, csid, userID, decision id or idempotency key
	name    []byte // field name
	index   uint32 // frame arrival index
	seq     uint64 // frame seq of a frame-seq key
	digest  []byte // frame digest of a frame-seq key
	expires int64  // expiry time of an expiry key
	// at is the creation time (unix ns) of an approval-by-user or pending
	// key, whose trailing approval id is in name; a device-by-user key's
	// device id is in name too.
	at int64
}

// decodeKey is the inverse of the key encoders: it is how the sweep reads
// expiry keys, and how the layout tests prove keys are unambiguous.
func decodeKey(k []byte) (keyParts, bool) {
	var p keyParts
	if len(k) == 0 {
		return p, false
	}
	p.kind, k = k[0], k[1:]
	org := func() bool {
		if len(k) < len(p.org) {
			return false
		}
		copy(p.org[:], k)
		k = k[len(p.org):]
		return true
	}
	lp := func() bool {
		n, w := binary.Uvarint(k)
		if w <= 0 || n > uint64(len(k)-w) {
			return false
		}
		p.id, k = k[w:w+int(n)], k[w+int(n):]
		return true
	}
	switch p.kind {
	case kindMeta, kindOrgByCID:
		p.id = k
		return p, true
	case kindOrgByKey:
		p.id = k
		return p, len(k) == 32
	case kindOrg:
		return p, org() && len(k) == 0
	case kindSession, kindAggregate:
		return p, org() && lp() && len(k) == 0
	case kindField:
		if !org() || !lp() {
			return p, false
		}
		p.name = k
		return p, true
	case kindFrame:
		if !org() || !lp() || len(k) != 4 {
			return p, false
		}
		p.index = binary.BigEndian.Uint32(k)
		return p, true
	case kindFrameSeq:
		if !org() || !lp() || len(k) != 8+frameDigestLen {
			return p, false
		}
		p.seq, p.digest = binary.BigEndian.Uint64(k), k[8:]
		return p, true
	case kindExpiry, kindIdemExpiry, kindApprovalExpiry:
		if len(k) < 8 {
			return p, false
		}
		p.expires = int64(binary.BigEndian.Uint64(k))
		k = k[8:]
		if !org() {
			return p, false
		}
		p.id = k
		return p, true
	case kindOrgDoc:
		if !org() || len(k) != 1 {
			return p, false
		}
		p.id = k
		return p, true
	case kindTemplate, kindDecision, kindIdempotency, kindOrgKey, kindTOTPSeed,
		kindUser, kindUserByMobile, kindUserByEmail, kindUserState, kindDevice, kindApproval:
		if !org() {
			return p, false
		}
		p.id = k
		return p, true
	case kindDeviceByToken, kindActivation:
		p.id = k
		return p, len(k) == 32
	case kindCodeExpiry:
		if len(k) != 8+32 {
			return p, false
		}
		p.expires, p.id = int64(binary.BigEndian.Uint64(k)), k[8:]
		return p, true
	case kindDeviceByUser, kindDecisionByUser:
		if !org() || !lp() {
			return p, false
		}
		p.name = k
		return p, true
	case kindApprovalByUser, kindPending:
		if !org() || !lp() || len(k) < 8 {
			return p, false
		}
		p.at, p.name = int64(binary.BigEndian.Uint64(k)), k[8:]
		return p, true
	}
	return p, false
}

// The approval record families' keys (users.go, devices.go, activation.go,
// approvals.go, userstate.go). A user id, device id or approval id that
// ends a key runs to its end; one followed by more parts is lp().

// appendUserPart appends kind, org, id: the key of a record named by one
// id (user, user-by-mobile, user-by-email, user state, device, approval).
func appendUserPart[T string | []byte](dst []byte, kind byte, org OrgID, id T) []byte {
	return append(append(append(dst, kind), org[:]...), id...)
}

func appendUserKey[T string | []byte](dst []byte, org OrgID, userID T) []byte {
	return appendUserPart(dst, kindUser, org, userID)
}

func appendUserStateKey[T string | []byte](dst []byte, org OrgID, userID T) []byte {
	return appendUserPart(dst, kindUserState, org, userID)
}

func appendDeviceKey[T string | []byte](dst []byte, org OrgID, deviceID T) []byte {
	return appendUserPart(dst, kindDevice, org, deviceID)
}

func appendApprovalKey[T string | []byte](dst []byte, org OrgID, approvalID T) []byte {
	return appendUserPart(dst, kindApproval, org, approvalID)
}

// appendPerUserPrefix appends kind, org, lp(userID): the scan prefix of one
// user's devices (device-by-user), approvals (approval-by-user) or pending
// approvals.
func appendPerUserPrefix[T string | []byte](dst []byte, kind byte, org OrgID, userID T) []byte {
	return appendSessionPart(dst, kind, org, userID)
}

// appendDecisionByUserKey is a decision's key in its user's index: the
// decision ids sort by creation time, so the index does too.
func appendDecisionByUserKey[T string | []byte](dst []byte, org OrgID, userID, decisionID T) []byte {
	return append(appendPerUserPrefix(dst, kindDecisionByUser, org, userID), decisionID...)
}

func appendDeviceByUserKey[T string | []byte](dst []byte, org OrgID, userID, deviceID T) []byte {
	return append(appendPerUserPrefix(dst, kindDeviceByUser, org, userID), deviceID...)
}

// appendApprovalIndexKey is an approval's key in the per-user indexes
// (approval-by-user, pending): ordered by creation, oldest first, then by
// id for approvals created in the same nanosecond.
func appendApprovalIndexKey[T string | []byte](dst []byte, kind byte, org OrgID, userID T, createdAt int64, approvalID T) []byte {
	dst = binary.BigEndian.AppendUint64(appendPerUserPrefix(dst, kind, org, userID), uint64(max(createdAt, 0)))
	return append(dst, approvalID...)
}

// appendHashKey is the key of a credential that names its organization
// (device token, activation code): kind, then the SHA-256 of the secret.
func appendHashKey(dst []byte, kind byte, hash *[32]byte) []byte {
	return append(append(dst, kind), hash[:]...)
}
