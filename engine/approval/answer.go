package approval

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/countersign/countersign/engine/rules"
)

// Decision is what the user chose on the device.
type Decision uint8

const (
	// DecisionApprove: the user approved.
	DecisionApprove Decision = iota + 1
	// DecisionDeny: the user refused.
	DecisionDeny
)

var decisionNames = [...]string{DecisionApprove: "approve", DecisionDeny: "deny"}

// String returns the wire name of d ("approve", "deny"), as signed, or "unknown".
func (d Decision) String() string { return enumName(decisionNames[:], d) }

// ParseDecision reads a wire decision, exactly as String writes it.
func ParseDecision(s string) (Decision, error) {
	return parseEnum[Decision](decisionNames[:], s, ErrDecision)
}

// Biometric is engine/rules' biometric result, the one type for it: the
// value a device signs is the value the rules decide on.
type Biometric = rules.Biometric

// ParseBiometric reads a wire biometric result: "PASS" or "FAIL", exactly.
// A device that made no check cannot answer, so there is no wire absent.
func ParseBiometric(s string) (Biometric, error) {
	switch s {
	case "PASS":
		return rules.BiometricPass, nil
	case "FAIL":
		return rules.BiometricFail, nil
	}
	return 0, fmt.Errorf("%w, got %q", ErrBiometric, s)
}

func validBiometric(b Biometric) bool { return b == rules.BiometricPass || b == rules.BiometricFail }

// Device is the registered device an answer comes from, as the store has
// it: whose it is and the Ed25519 key it signs with.
type Device struct {
	ID        string
	UserID    string
	PublicKey ed25519.PublicKey
}

// DeviceAnswer is the device's answer to one approval, as it arrives on
// POST /v1/device/approvals/{id}, its fields already parsed from JSON.
type DeviceAnswer struct {
	Decision  Decision
	Biometric Biometric
	Timestamp string // as sent: it is signed byte for byte
	Number    string // the number the user picked; "" when none was sent
	Signature string // base64url without padding, as sent
	// Location is where the device says it was when it answered; not
	// signed, as the rules judge it. Answer keeps it on the approval, so
	// that a circle a requester sends when it reads the result (iVALT's
	// radius_meters) is checked against where the device really was.
	Location rules.Location
}

// SignatureSize is the length of an Ed25519 signature.
const SignatureSize = ed25519.SignatureSize

// SignedBytesPrefix is the first line of what a device signs: it names the
// format so that a signature for one purpose cannot be taken for another.
const SignedBytesPrefix = "countersign-approval-v1"

// MaxClockSkew is how far an answer's timestamp may be from the server's
// clock, either way.
const MaxClockSkew = 5 * time.Minute

// Refusals of an answer. CountsAsFailure says which count as the user's
// failures: not the server-side ones (ErrPublicKey, ErrRules), not a
// malformed request, not a device of somebody else.
var (
	// ErrPublicKey: the device's key is not 32 bytes, or is one of the
	// small-order points, with which anyone can forge a signature.
	ErrPublicKey = errors.New("approval: device public key is not a usable Ed25519 public key")
	ErrDecision  = errors.New(`approval: decision must be "approve" or "deny"`)
	ErrBiometric = errors.New(`approval: biometric result must be "PASS" or "FAIL"`)
	// ErrSignature: the signature is malformed or does not verify over the
	// approval's signed bytes (an altered value changes them).
	ErrSignature = errors.New("approval: bad signature")
	// ErrTimestamp: the answer's timestamp is not RFC 3339.
	ErrTimestamp = errors.New("approval: timestamp is not RFC 3339")
	// ErrClockSkew: the answer's timestamp is more than MaxClockSkew from now.
	ErrClockSkew = errors.New("approval: timestamp is more than 5 minutes off")
	// ErrDeviceUser: the device is registered to another user than the approval's.
	ErrDeviceUser = errors.New("approval: the device is not the approval user's")
	// ErrRules: the rules' Result is missing, or its biometric factor is not
	// the one the device signed: a caller's mistake, not the user's.
	ErrRules = errors.New("approval: the rules result does not belong to this answer")
)

// AppendSignedBytes appends what a device signs for its answer: these lines
// joined by '\n', without a final one: SignedBytesPrefix, the approval id,
// the challenge in base64url without padding (as the device receives it), the
// decision, the biometric result, the timestamp exactly as sent, and the
// lowercase hex of valuesDigest (ValuesDigest of the approval's values).
// New keeps control characters out of the id, so each line is one field.
func AppendSignedBytes(dst []byte, id string, challenge *[ChallengeSize]byte, d Decision,
	b Biometric, timestamp string, valuesDigest *[sha256.Size]byte) []byte {
	dst = append(dst, SignedBytesPrefix...)
	dst = append(dst, '\n')
	dst = append(dst, id...)
	dst = append(dst, '\n')
	dst = base64.RawURLEncoding.AppendEncode(dst, challenge[:])
	dst = append(dst, '\n')
	dst = append(dst, d.String()...)
	dst = append(dst, '\n')
	dst = append(dst, b.String()...)
	dst = append(dst, '\n')
	dst = append(dst, timestamp...)
	dst = append(dst, '\n')
	return hex.AppendEncode(dst, valuesDigest[:])
}

// ValuesDigest is the SHA-256 of the values in order, each key and each
// value followed by a 0x00 byte. New refuses a NUL inside a key or value,
// so no two lists of values (say "ab"="c" and "a"="bc") hash the same
// input. No values hash the empty string.
func ValuesDigest(values []Value) [sha256.Size]byte {
	h := sha256.New()
	zero := []byte{0}
	for i := range values {
		h.Write([]byte(values[i].Key))
		h.Write(zero)
		h.Write([]byte(values[i].Value))
		h.Write(zero)
	}
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return sum
}

// smallOrder are the encodings of the eight points of order dividing 8
// with bit 255 (the sign of x) cleared: y = 0 (order 4), 1 (the identity),
// the two y of the order-8 points, p-1 (order 2), and the non-canonical p
// and p+1, which decode as 0 and 1. Only y below 19 has a second spelling
// under 2^255, and of those only 0 and 1 are small-order, so with the sign
// bit either way these are all 14 encodings (libsodium's blocklist).
var smallOrder = [7][32]byte{
	{},
	{1},
	{0x26, 0xe8, 0x95, 0x8f, 0xc2, 0xb2, 0x27, 0xb0, 0x45, 0xc3, 0xf4, 0x89, 0xf2, 0xef, 0x98, 0xf0,
		0xd5, 0xdf, 0xac, 0x05, 0xd3, 0xc6, 0x33, 0x39, 0xb1, 0x38, 0x02, 0x88, 0x6d, 0x53, 0xfc, 0x05},
	{0xc7, 0x17, 0x6a, 0x70, 0x3d, 0x4d, 0xd8, 0x4f, 0xba, 0x3c, 0x0b, 0x76, 0x0d, 0x10, 0x67, 0x0f,
		0x2a, 0x20, 0x53, 0xfa, 0x2c, 0x39, 0xcc, 0xc6, 0x4e, 0xc7, 0xfd, 0x77, 0x92, 0xac, 0x03, 0x7a},
	pMinus(1),
	pMinus(0),
	pMinus(-1),
}

// pMinus is the little-endian encoding of p - k, p = 2^255 - 19.
func pMinus(k int) [32]byte {
	var b [32]byte
	for i := range b {
		b[i] = 0xff
	}
	b[0], b[31] = byte(0xed-k), 0x7f
	return b
}

// CheckDevicePublicKey refuses a key that is not an Ed25519 public key a
// signature can be trusted under: the wrong length, or a small-order point
// in any of its encodings. With such a key, a signature of R = the identity
// and S = 0 (or a few tries of R) verifies over any message, so anyone could
// answer as the device. The check is on the encoding and does not allocate.
func CheckDevicePublicKey(pub []byte) error {
	if len(pub) != ed25519.PublicKeySize {
		return fmt.Errorf("%w: %d bytes", ErrPublicKey, len(pub))
	}
	for i := range smallOrder {
		bad := &smallOrder[i]
		same := pub[31]&0x7f == bad[31]
		for j := 0; same && j < 31; j++ {
			same = pub[j] == bad[j]
		}
		if same {
			return fmt.Errorf("%w: a small-order point", ErrPublicKey)
		}
	}
	return nil
}

// signedBytesRoom is enough for the signed bytes of a typical approval, so
// that verifying one builds them on the stack.
const signedBytesRoom = 256

// VerifyAnswer checks the device's answer to a at now, in the order a
// reader of the refusal would want: the key, the approval still pending,
// the answer's form, its timestamp, then its signature (over a's values, so
// an altered value fails here). It does not change a. Answer calls it; the
// number under number matching is an outcome, decided there.
func VerifyAnswer(pub ed25519.PublicKey, a *Approval, ans *DeviceAnswer, now time.Time) error {
	if err := CheckDevicePublicKey(pub); err != nil {
		return err
	}
	switch st := a.StatusAt(now); st {
	case StatusPending:
	case StatusExpired:
		return ErrLate
	default:
		return fmt.Errorf("%w: it is %s", ErrNotPending, st)
	}
	if ans.Decision.String() == "unknown" {
		return fmt.Errorf("%w, got %d", ErrDecision, ans.Decision)
	}
	if !validBiometric(ans.Biometric) {
		return fmt.Errorf("%w, got %d", ErrBiometric, ans.Biometric)
	}
	ts, err := time.Parse(time.RFC3339, ans.Timestamp)
	if err != nil {
		return fmt.Errorf("%w: %q", ErrTimestamp, ans.Timestamp)
	}
	if skew := ts.Sub(now); skew > MaxClockSkew || skew < -MaxClockSkew {
		return fmt.Errorf("%w: %s is %v from now", ErrClockSkew, ans.Timestamp, skew.Round(time.Second))
	}
	var sig [SignatureSize]byte
	if err := decodeSignature(&sig, ans.Signature); err != nil {
		return err
	}
	if !verifySigned(pub, a, ans.Decision, ans.Biometric, ans.Timestamp, &sig) {
		return fmt.Errorf("%w: it does not verify with the device's key", ErrSignature)
	}
	return nil
}

// verifySigned checks sig over a's signed bytes for the given answer fields.
func verifySigned(pub ed25519.PublicKey, a *Approval, d Decision, b Biometric, ts string, sig *[SignatureSize]byte) bool {
	digest := ValuesDigest(a.Values)
	var room [signedBytesRoom]byte
	msg := AppendSignedBytes(room[:0], a.ID, &a.Challenge, d, b, ts, &digest)
	return ed25519.Verify(pub, msg, sig[:])
}

// decodeSignature reads a base64url signature without padding, refusing
// any other spelling of the same bytes so the receipt is the one signature
// sent.
func decodeSignature(sig *[SignatureSize]byte, s string) error {
	if len(s) != base64.RawURLEncoding.EncodedLen(SignatureSize) {
		return fmt.Errorf("%w: a signature is %d base64url characters, got %d",
			ErrSignature, base64.RawURLEncoding.EncodedLen(SignatureSize), len(s))
	}
	n, err := base64.RawURLEncoding.Strict().Decode(sig[:], []byte(s))
	if err != nil || n != SignatureSize {
		return fmt.Errorf("%w: not base64url without padding", ErrSignature)
	}
	return nil
}

// Effect is what a transition did beyond the approval itself, for the
// caller to store and act on.
type Effect struct {
	// Status is the approval's status after the transition; zero for
	// CheckTOTP, which has no approval.
	Status Status
	// Failure: the transition counted one of the user's consecutive failures.
	Failure bool
	// LockedUntil is the end of the user's lock, zero when not locked: the
	// lock this failure started, or the one that refused the answer.
	LockedUntil time.Time
	// CancelOtherPending: the user denied, so the store cancels the user's
	// other pending approvals (Cancel each), and none stays approvable
	// without the OTP the denial now requires.
	CancelOtherPending bool
}

// Answer applies the device's answer to a at now: on a, the receipt, the
// device, every factor with the rules version; on u, what the outcome means
// for the user. It is the one place the three surfaces go through, so they
// agree on how an answer changes the user's state. res is rules.Evaluate's
// Result for this answer (its biometric factor from ans.Biometric).
//
// In order: a locked user is refused (ErrLocked), then an approval that is
// not a push or a device of another user, a bad key, an approval no longer
// pending, a malformed, stale or badly signed answer; a refusal that
// CountsAsFailure is recorded as one and leaves a pending (the real device
// may still answer), except one at or past the expiry, which marks a
// expired. An answer that verifies is final: denied on a denial (the user
// now needs the OTP, and the other pending approvals are to be cancelled:
// Effect.CancelOtherPending); failed, and a failure, when the biometric
// result, a configured rule, or under number matching the number (missing
// or wrong) fails, so that a wrong pick cannot be followed by another guess;
// otherwise approved, which ends the user's run of failures.
func Answer(a *Approval, u *UserState, s *Settings, dev *Device, ans *DeviceAnswer, res *rules.Result, now time.Time) (Effect, error) {
	if until, locked := u.LockedAt(now); locked {
		return Effect{Status: a.Status, LockedUntil: until}, ErrLocked
	}
	switch {
	case a.Method != MethodPush:
		return Effect{Status: a.Status}, fmt.Errorf("%w: a device answer to method %s", ErrWrongMethod, a.Method)
	case dev.UserID != a.UserID:
		return Effect{Status: a.Status}, fmt.Errorf("%w: device %q", ErrDeviceUser, dev.ID)
	}
	err := a.answerableAt(now)
	if err == nil {
		err = VerifyAnswer(dev.PublicKey, a, ans, now)
	}
	if err == nil && (res == nil || !rulesMatch(res, ans.Biometric)) {
		return Effect{Status: a.Status}, ErrRules
	}
	if err != nil {
		return refused(a, u, s, now, err)
	}
	_ = decodeSignature(&a.Receipt.Signature, ans.Signature) // checked by VerifyAnswer
	a.Receipt.Decision, a.Receipt.Biometric, a.Receipt.Timestamp = ans.Decision, ans.Biometric, ans.Timestamp
	a.DeviceID, a.DecidedAt = dev.ID, now
	a.Location = keptLocation(ans.Location)
	a.recordRules(res)
	if ans.Decision == DecisionDeny {
		a.Status = StatusDenied
		u.TokenRequired = true
		return Effect{Status: a.Status, CancelOtherPending: true}, nil
	}
	failed := res.Failed()
	if a.NumberMatch {
		f := FactorOutcome{Factor: FactorNumberMatch, Outcome: rules.Pass, Reason: reasonNumberPass}
		switch {
		case ans.Number == "":
			f.Outcome, f.Reason = rules.Fail, reasonNumberMissing
		case ans.Number != string(a.UserCode[:]):
			f.Outcome, f.Reason = rules.Fail, reasonNumberWrong
		}
		a.Factors = append(a.Factors, f)
		failed = failed || f.Outcome == rules.Fail
	}
	if failed {
		a.Status = StatusFailed
		return Effect{Status: a.Status, Failure: true, LockedUntil: RecordFailure(u, s, now)}, nil
	}
	a.Status = StatusApproved
	u.Failures = 0
	return Effect{Status: a.Status}, nil
}

// keptLocation is the location an approval keeps: a fix that is not a
// coordinate (out of range, NaN, a negative or infinite accuracy) is kept as
// none, so that the record holds only what the rules can measure and
// decodes to the same bytes.
func keptLocation(l rules.Location) rules.Location {
	if !l.Present || !(l.Lat >= -90 && l.Lat <= 90 && l.Lon >= -180 && l.Lon <= 180) ||
		!(l.AccuracyM >= 0 && l.AccuracyM <= math.MaxFloat64) {
		return rules.Location{}
	}
	return l
}

// rulesMatch says whether res is a Result for an answer with biometric b.
func rulesMatch(res *rules.Result, b Biometric) bool {
	return res.Factors[rules.FactorBiometric] == rules.BiometricFactor(b)
}

// refused records a refusal: one that CountsAsFailure counts.
func refused(a *Approval, u *UserState, s *Settings, now time.Time, err error) (Effect, error) {
	eff := Effect{Status: a.Status}
	if CountsAsFailure(err) {
		eff.Failure, eff.LockedUntil = true, RecordFailure(u, s, now)
	}
	return eff, err
}

// HasReceipt reports whether a holds a device's signed answer.
func (a *Approval) HasReceipt() bool { return a.Receipt.Decision != 0 }

// VerifyReceipt reports whether a's receipt is a signature by pub over a's
// signed bytes: what anyone holding the device's public key can check. A
// small-order key verifies nothing.
func (a *Approval) VerifyReceipt(pub ed25519.PublicKey) bool {
	if !a.HasReceipt() || CheckDevicePublicKey(pub) != nil {
		return false
	}
	r := &a.Receipt
	return verifySigned(pub, a, r.Decision, r.Biometric, r.Timestamp, &r.Signature)
}

// CountsAsFailure reports whether a refusal counts as one of the user's
// consecutive failures (Answer, CheckTOTP and DecideOTP record it so): a bad
// signature, a timestamp that is malformed or too far off, an answer after
// expiry, a wrong or replayed TOTP code. A malformed request, a second
// answer to a decided approval, a cancel or expiry, a lock, a link or
// token that does not match (which anybody can send) does not.
func CountsAsFailure(err error) bool {
	for _, f := range failures {
		if errors.Is(err, f) {
			return true
		}
	}
	return false
}

var failures = [...]error{ErrSignature, ErrTimestamp, ErrClockSkew, ErrLate, ErrOTPWrong, ErrOTPReplayed}
