package approval

import (
	"encoding/binary"
	"errors"
	"math"
	"math/bits"
	"net/netip"
	"time"
	"unicode/utf8"

	"github.com/countersign/countersign/engine/rules"
)

// The binary forms kept by the store. The first byte is the format version:
// a new version gets a new number and DecodeX keeps reading the old ones.
//
// Approval, version 1:
//
//	version  byte 1
//	record version                          uvarint (the store's compare-and-set counter)
//	id, userID, message                     uvarint length + bytes each
//	values   uvarint count, then key and value as strings
//	method, status, flags                   a byte each (flags: numberMatch, receipt,
//	                                        link token, result token)
//	createdAt, expiresAt, decidedAt         int64 little-endian Unix nanoseconds; 0 is the zero time
//	challenge                               32 bytes
//	userCode                                2 ASCII digits, under numberMatch only
//	sourceIP                                length byte (0, 4 or 16) + the address
//	deviceID                                string
//	rulesVersion                            uvarint
//	factors  uvarint count, then factor byte, outcome byte, reason string each
//	receipt  (flag) signature 64 bytes, decision byte, biometric byte, timestamp string
//	link token, result token (flags)        SHA-256 32 bytes, expiresAt int64, used byte each
//
// Approval, version 2: version 1 with byte 2, a fifth flag (location), and
// when it is set, after the tokens, the device's location as lat, lon and
// accuracyM, float64 little-endian each. Version 1 records still decode, with
// no location: they were written before the location was kept.
//
// UserState, version 1:
//
//	version byte 1, flags byte (tokenRequired), record version uvarint,
//	failures uvarint, lockedUntil int64, lastTOTPStep uvarint,
//	recent: uvarint count then int64 each
const (
	approvalV1  = 1
	approvalV2  = 2
	userStateV1 = 1

	flagNumberMatch = 1 << 0
	flagReceipt     = 1 << 1
	flagLinkToken   = 1 << 2
	flagResultToken = 1 << 3
	flagLocation    = 1 << 4
	approvalFlagsV1 = flagNumberMatch | flagReceipt | flagLinkToken | flagResultToken
	approvalFlags   = approvalFlagsV1 | flagLocation

	flagToken = 1 << 0
)

// Errors of the decoders: bytes the encoders cannot have produced, or a
// record no transition can have left (a pending approval with a receipt).
var (
	ErrCorrupt          = errors.New("approval: corrupt approval record")
	ErrCorruptUserState = errors.New("approval: corrupt user state record")
)

// AppendApproval appends a's binary form to dst. It allocates only when dst
// lacks room.
func AppendApproval(dst []byte, a *Approval) []byte {
	dst = append(dst, approvalV2)
	dst = binary.AppendUvarint(dst, a.Version)
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
	if a.LinkToken.Issued() {
		flags |= flagLinkToken
	}
	if a.ResultToken.Issued() {
		flags |= flagResultToken
	}
	if a.Location.Present {
		flags |= flagLocation
	}
	dst = append(dst, byte(a.Method), byte(a.Status), flags)
	dst = appendTime(dst, a.CreatedAt)
	dst = appendTime(dst, a.ExpiresAt)
	dst = appendTime(dst, a.DecidedAt)
	dst = append(dst, a.Challenge[:]...)
	if a.NumberMatch {
		dst = append(dst, a.UserCode[:]...)
	}
	ip := a.SourceIP.AsSlice()
	dst = append(dst, byte(len(ip)))
	dst = append(dst, ip...)
	dst = appendString(dst, a.DeviceID)
	dst = binary.AppendUvarint(dst, a.RulesVersion)
	dst = binary.AppendUvarint(dst, uint64(len(a.Factors)))
	for i := range a.Factors {
		f := &a.Factors[i]
		dst = append(dst, byte(f.Factor), byte(f.Outcome))
		dst = appendString(dst, f.Reason)
	}
	if a.HasReceipt() {
		r := &a.Receipt
		dst = append(dst, r.Signature[:]...)
		dst = append(dst, byte(r.Decision), byte(r.Biometric))
		dst = appendString(dst, r.Timestamp)
	}
	for _, t := range [...]*OneTimeToken{&a.LinkToken, &a.ResultToken} {
		if t.Issued() {
			dst = append(dst, t.Hash[:]...)
			dst = appendTime(dst, t.ExpiresAt)
			dst = append(dst, boolByte(t.Used))
		}
	}
	if l := &a.Location; l.Present {
		for _, f := range [...]float64{l.Lat, l.Lon, l.AccuracyM} {
			dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(f))
		}
	}
	return dst
}

func boolByte(b bool) byte {
	if b {
		return 1
	}
	return 0
}

// DecodeApproval reads AppendApproval's bytes into a, reusing its slices.
// Anything AppendApproval cannot have produced (an unknown version, an
// unknown method, status, factor, outcome, decision or biometric result, a
// user code that is not two digits, a length past the end, a non-minimal
// varint, bytes left over), and any record no transition can leave (see
// sensible), is refused with ErrCorrupt and leaves a empty. It never panics.
//
// It allocates once: the record is copied into one string that every string
// field of a slices, so a owns its text and the caller may reuse src at
// once, at the cost of one allocation the size of the record rather than
// one per field.
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
	known := byte(approvalFlags)
	switch r.byte() {
	case approvalV1:
		known = approvalFlagsV1
	case approvalV2:
	default:
		return ErrCorrupt
	}
	r.text = string(src)
	a.Version = r.uvarint()
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
	switch ipLen := r.byte(); ipLen {
	case 0:
	case 4, 16:
		a.SourceIP, _ = netip.AddrFromSlice(r.bytes(int(ipLen)))
	default:
		return ErrCorrupt
	}
	a.DeviceID = r.string()
	a.RulesVersion = r.uvarint()
	n = r.count(3)
	for range n {
		f := FactorOutcome{Factor: Factor(r.byte()), Outcome: rules.Outcome(r.byte()), Reason: r.string()}
		if f.Factor >= numFactors || f.Outcome > rules.Fail || !utf8.ValidString(f.Reason) {
			return ErrCorrupt
		}
		a.Factors = append(a.Factors, f)
	}
	if flags&flagReceipt != 0 {
		copy(a.Receipt.Signature[:], r.bytes(SignatureSize))
		a.Receipt.Decision, a.Receipt.Biometric = Decision(r.byte()), Biometric(r.byte())
		a.Receipt.Timestamp = r.string()
		if a.Receipt.Decision.String() == "unknown" || !validBiometric(a.Receipt.Biometric) {
			return ErrCorrupt
		}
	}
	for _, t := range [...]struct {
		flag byte
		tok  *OneTimeToken
	}{{flagLinkToken, &a.LinkToken}, {flagResultToken, &a.ResultToken}} {
		if flags&t.flag == 0 {
			continue
		}
		copy(t.tok.Hash[:], r.bytes(len(t.tok.Hash)))
		t.tok.ExpiresAt = r.time()
		used := r.byte()
		t.tok.Used = used == 1
		if used > 1 || !t.tok.Issued() {
			return ErrCorrupt
		}
	}
	if flags&flagLocation != 0 {
		a.Location = rules.Location{Present: true, Lat: r.float(), Lon: r.float(), AccuracyM: r.float()}
		if keptLocation(a.Location) != a.Location {
			return ErrCorrupt
		}
	}
	switch {
	case r.bad || len(r.b) != 0:
		return ErrCorrupt
	case flags&^known != 0:
		return ErrCorrupt
	case a.Method.String() == "unknown" || a.Status.String() == "unknown":
		return ErrCorrupt
	case a.NumberMatch && !(isDigit(a.UserCode[0]) && isDigit(a.UserCode[1])):
		return ErrCorrupt
	case !a.sensible():
		return ErrCorrupt
	}
	return nil
}

// sensible says whether a is a record the transitions can leave, so that a
// damaged or forged record that decodes is still refused: a pending approval
// carries no decision (no decision time, receipt, device, factors, rules
// version or result token); a decided one has its decision time; a receipt
// belongs to a push that the device decided, and says deny exactly when the
// approval is denied; a location comes with a receipt; number matching is
// for pushes, a link for EMAIL
// approvals, a result token for approved ones or one issued ahead; and
// the expiry follows the creation.
func (a *Approval) sensible() bool {
	pending := a.Status == StatusPending
	switch {
	case a.CreatedAt.IsZero() || !a.ExpiresAt.After(a.CreatedAt):
		return false
	case pending && (!a.DecidedAt.IsZero() || a.HasReceipt() || a.DeviceID != "" || len(a.Factors) != 0 ||
		a.RulesVersion != 0):
		return false
	case !pending && a.DecidedAt.IsZero():
		return false
	case a.HasReceipt() && (a.Method != MethodPush || a.DeviceID == "" ||
		(a.Receipt.Decision == DecisionDeny) != (a.Status == StatusDenied)):
		return false
	case a.Status == StatusDenied && !a.HasReceipt():
		return false
	case a.NumberMatch && a.Method != MethodPush:
		return false
	case a.LinkToken.Issued() && a.Method != MethodEmail:
		return false
	case a.ResultToken.Issued() && a.Status != StatusApproved && !a.ResultToken.ExpiresAt.Equal(a.ExpiresAt.Add(ResultTokenTTL)):
		// Only a token issued ahead (IssueResultTokenAhead), whose expiry
		// follows the approval's, is kept by an approval not approved.
		return false
	case a.Location.Present && !a.HasReceipt():
		// Only an accepted device answer brings a location.
		return false
	}
	return true
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// AppendUserState appends u's binary form to dst.
func AppendUserState(dst []byte, u *UserState) []byte {
	var flags byte
	if u.TokenRequired {
		flags |= flagToken
	}
	dst = append(dst, userStateV1, flags)
	dst = binary.AppendUvarint(dst, u.Version)
	dst = binary.AppendUvarint(dst, uint64(u.Failures))
	dst = appendTime(dst, u.LockedUntil)
	dst = binary.AppendUvarint(dst, u.LastTOTPStep)
	dst = binary.AppendUvarint(dst, uint64(len(u.Recent)))
	for _, t := range u.Recent {
		dst = appendTime(dst, t)
	}
	return dst
}

// DecodeUserState reads AppendUserState's bytes into u, reusing u.Recent,
// without allocating once u.Recent has the room. What AppendUserState cannot
// have produced, and a state no transition leaves (a lock without failures,
// a window out of order or with a zero time), is refused with
// ErrCorruptUserState and leaves u the zero state (with Recent's capacity).
func DecodeUserState(src []byte, u *UserState) error {
	recent := u.Recent[:0]
	*u = UserState{Recent: recent}
	r := reader{b: src}
	version, flags := r.byte(), r.byte()
	u.Version = r.uvarint()
	failures := r.uvarint()
	u.LockedUntil = r.time()
	u.LastTOTPStep = r.uvarint()
	n := r.count(8)
	sorted := true
	for i := range n {
		t := r.time()
		sorted = sorted && !t.IsZero() && (i == 0 || !t.Before(u.Recent[i-1]))
		u.Recent = append(u.Recent, t)
	}
	if r.bad || len(r.b) != 0 || version != userStateV1 || flags&^flagToken != 0 || failures > 1<<31 ||
		!sorted || !u.LockedUntil.IsZero() && failures == 0 {
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
// once at the end. text, when set, is the whole input as a string: strings
// are read as slices of it, without a copy each.
type reader struct {
	b    []byte
	text string
	bad  bool
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

// string reads a length-prefixed string as a slice of r.text: the offset of
// the rest of the input in text is len(text) - len(b).
func (r *reader) string() string {
	n := r.uvarint()
	if r.bad || n > uint64(len(r.b)) {
		r.bad = true
		return ""
	}
	start := len(r.text) - len(r.b)
	r.b = r.b[n:]
	return r.text[start : start+int(n)]
}

func (r *reader) float() float64 {
	b := r.bytes(8)
	if b == nil {
		return 0
	}
	return math.Float64frombits(binary.LittleEndian.Uint64(b))
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
