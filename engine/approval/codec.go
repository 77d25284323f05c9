package approval

import (
	"encoding/binary"
	"errors"
	"math/bits"
	"time"
)

// The binary forms kept by the store. The first byte is the format version:
// a new version gets a new number and DecodeX keeps reading the old ones.
//
// Approval, version 1:
//
//	version  byte 1
//	id, userID, message                     uvarint length + bytes each
//	values   uvarint count, then key and value as strings
//	method, status, flags                   a byte each (flags: numberMatch, receipt)
//	createdAt, expiresAt, decidedAt         int64 little-endian Unix nanoseconds; 0 is the zero time
//	challenge                               32 bytes
//	userCode                                2 ASCII digits, under numberMatch only
//	deviceID                                string
//	factors  uvarint count, then strings
//	receipt  (flag) signature 64 bytes, decision byte, biometric byte, timestamp string
//
// UserState, version 1:
//
//	version byte 1, flags byte (tokenRequired), failures uvarint,
//	lockedUntil int64, lastTOTPStep uvarint, recent: uvarint count then int64 each
const (
	approvalV1  = 1
	userStateV1 = 1

	flagNumberMatch = 1 << 0
	flagReceipt     = 1 << 1
	flagToken       = 1 << 0
)

// Errors of the decoders: bytes the encoders cannot have produced.
var (
	ErrCorrupt          = errors.New("approval: corrupt approval record")
	ErrCorruptUserState = errors.New("approval: corrupt user state record")
)

// AppendApproval appends a's binary form to dst. It allocates only when dst
// lacks room.
func AppendApproval(dst []byte, a *Approval) []byte {
	dst = append(dst, approvalV1)
	dst = appendString(dst, a.ID)
	dst = appendString(dst, a.UserID)
	dst = appendString(dst, a.Message)
	dst = binary.AppendUvarint(dst, uint64(len(a.Values)))
	for i := range a.Values {
		dst = appendString(dst, a.Values[i].Key)
		dst = appendString(dst, a.Values[i].Value)
	}
	var flags byte
	if a.NumberMatch {
		flags |= flagNumberMatch
	}
	if a.HasReceipt() {
		flags |= flagReceipt
	}
	dst = append(dst, byte(a.Method), byte(a.Status), flags)
	dst = appendTime(dst, a.CreatedAt)
	dst = appendTime(dst, a.ExpiresAt)
	dst = appendTime(dst, a.DecidedAt)
	dst = append(dst, a.Challenge[:]...)
	if a.NumberMatch {
		dst = append(dst, a.UserCode[:]...)
	}
	dst = appendString(dst, a.DeviceID)
	dst = binary.AppendUvarint(dst, uint64(len(a.Factors)))
	for _, f := range a.Factors {
		dst = appendString(dst, f)
	}
	if a.HasReceipt() {
		r := &a.Receipt
		dst = append(dst, r.Signature[:]...)
		dst = append(dst, byte(r.Decision), byte(r.Biometric))
		dst = appendString(dst, r.Timestamp)
	}
	return dst
}

// DecodeApproval reads AppendApproval's bytes into a, reusing its slices.
// Anything AppendApproval cannot have produced (an unknown version, an
// unknown method, status, decision or biometric result, a user code that is
// not two digits, a length past the end, a non-minimal varint, bytes left
// over) is refused with ErrCorrupt and leaves a empty. It never panics, and
// allocates no more than the input's length justifies.
func DecodeApproval(src []byte, a *Approval) error {
	if err := decodeApproval(src, a); err != nil {
		a.Reset()
		return err
	}
	return nil
}

func decodeApproval(src []byte, a *Approval) error {
	a.Reset()
	r := reader{b: src}
	if r.byte() != approvalV1 {
		return ErrCorrupt
	}
	a.ID, a.UserID, a.Message = r.string(), r.string(), r.string()
	n := r.count(2) // a value is at least two empty strings
	for range n {
		a.Values = append(a.Values, Value{Key: r.string(), Value: r.string()})
	}
	a.Method, a.Status = Method(r.byte()), Status(r.byte())
	flags := r.byte()
	a.CreatedAt, a.ExpiresAt, a.DecidedAt = r.time(), r.time(), r.time()
	copy(a.Challenge[:], r.bytes(ChallengeSize))
	if flags&flagNumberMatch != 0 {
		a.NumberMatch = true
		copy(a.UserCode[:], r.bytes(2))
	}
	a.DeviceID = r.string()
	n = r.count(1)
	for range n {
		a.Factors = append(a.Factors, r.string())
	}
	if flags&flagReceipt != 0 {
		copy(a.Receipt.Signature[:], r.bytes(SignatureSize))
		a.Receipt.Decision, a.Receipt.Biometric = Decision(r.byte()), BiometricResult(r.byte())
		a.Receipt.Timestamp = r.string()
		if a.Receipt.Decision.String() == "unknown" || a.Receipt.Biometric.String() == "unknown" {
			return ErrCorrupt
		}
	}
	switch {
	case r.bad || len(r.b) != 0:
		return ErrCorrupt
	case flags&^(flagNumberMatch|flagReceipt) != 0:
		return ErrCorrupt
	case a.Method.String() == "unknown" || a.Status.String() == "unknown":
		return ErrCorrupt
	case a.NumberMatch && !(isDigit(a.UserCode[0]) && isDigit(a.UserCode[1])):
		return ErrCorrupt
	}
	return nil
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// AppendUserState appends u's binary form to dst.
func AppendUserState(dst []byte, u *UserState) []byte {
	var flags byte
	if u.TokenRequired {
		flags |= flagToken
	}
	dst = append(dst, userStateV1, flags)
	dst = binary.AppendUvarint(dst, uint64(u.Failures))
	dst = appendTime(dst, u.LockedUntil)
	dst = binary.AppendUvarint(dst, u.LastTOTPStep)
	dst = binary.AppendUvarint(dst, uint64(len(u.Recent)))
	for _, t := range u.Recent {
		dst = appendTime(dst, t)
	}
	return dst
}

// DecodeUserState reads AppendUserState's bytes into u, reusing u.Recent;
// what AppendUserState cannot have produced is refused with
// ErrCorruptUserState and leaves u the zero state (with Recent's capacity).
func DecodeUserState(src []byte, u *UserState) error {
	recent := u.Recent[:0]
	*u = UserState{Recent: recent}
	r := reader{b: src}
	version, flags := r.byte(), r.byte()
	failures := r.uvarint()
	u.LockedUntil = r.time()
	u.LastTOTPStep = r.uvarint()
	n := r.count(8)
	for range n {
		u.Recent = append(u.Recent, r.time())
	}
	if r.bad || len(r.b) != 0 || version != userStateV1 || flags&^flagToken != 0 || failures > 1<<31 {
		*u = UserState{Recent: recent}
		return ErrCorruptUserState
	}
	u.Failures, u.TokenRequired = int(failures), flags&flagToken != 0
	return nil
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// appendTime writes t as Unix nanoseconds, the zero time as 0. Times of
// approvals lie well inside the int64 nanosecond range (1678..2262); the
// Unix epoch itself reads back as the zero time.
func appendTime(dst []byte, t time.Time) []byte {
	var ns int64
	if !t.IsZero() {
		ns = t.UnixNano()
	}
	return binary.LittleEndian.AppendUint64(dst, uint64(ns))
}

// reader consumes an encoding; after the first short or malformed read it
// is bad and every further read returns zero values, so a decoder checks
// once at the end.
type reader struct {
	b   []byte
	bad bool
}

func (r *reader) bytes(n int) []byte {
	if r.bad || n > len(r.b) {
		r.bad = true
		return nil
	}
	out := r.b[:n]
	r.b = r.b[n:]
	return out
}

func (r *reader) byte() byte {
	b := r.bytes(1)
	if b == nil {
		return 0
	}
	return b[0]
}

// uvarint reads a minimal uvarint: the encoders write no other, and taking
// only those keeps each record's encoding unique.
func (r *reader) uvarint() uint64 {
	if r.bad {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 || n != uvarintLen(v) {
		r.bad = true
		return 0
	}
	r.b = r.b[n:]
	return v
}

func uvarintLen(v uint64) int { return (bits.Len64(v|1) + 6) / 7 }

// count reads a count of items that take at least min bytes each, refusing
// one the rest of the input cannot hold, so that a forged count cannot make
// the decoder allocate.
func (r *reader) count(min int) int {
	n := r.uvarint()
	if n > uint64(len(r.b)/min) {
		r.bad = true
		return 0
	}
	return int(n)
}

func (r *reader) string() string {
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		r.bad = true
		return ""
	}
	return string(r.bytes(int(n)))
}

func (r *reader) time() time.Time {
	b := r.bytes(8)
	if b == nil {
		return time.Time{}
	}
	ns := int64(binary.LittleEndian.Uint64(b))
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns).UTC()
}
