package approval

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
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

// BiometricResult is the device's own biometric check (face or fingerprint)
// made before the user's decision was accepted on the device.
type BiometricResult uint8

const (
	// BiometricPass: the device recognised its user.
	BiometricPass BiometricResult = iota + 1
	// BiometricFail: it did not; an approval fails on it.
	BiometricFail
)

var biometricNames = [...]string{BiometricPass: "PASS", BiometricFail: "FAIL"}

// String returns the wire name of b ("PASS", "FAIL"), as signed, or "unknown".
func (b BiometricResult) String() string { return enumName(biometricNames[:], b) }

// ParseBiometric reads a wire biometric result, exactly as String writes it.
func ParseBiometric(s string) (BiometricResult, error) {
	return parseEnum[BiometricResult](biometricNames[:], s, ErrBiometric)
}

// Answer is the device's answer to one approval, as it arrives on
// POST /v1/device/approvals/{id}, its fields already parsed from JSON.
type Answer struct {
	DeviceID  string // the device the caller authenticated, not a field of the body
	Decision  Decision
	Biometric BiometricResult
	Timestamp string // as sent: it is signed byte for byte
	Number    string // the number the user picked; "" when none was sent
	Signature string // base64url without padding, as sent
}

// SignatureSize is the length of an Ed25519 signature.
const SignatureSize = ed25519.SignatureSize

// SignedBytesPrefix is the first line of what a device signs: it names the
// format so that a signature for one purpose cannot be taken for another.
const SignedBytesPrefix = "countersign-approval-v1"

// MaxClockSkew is how far an answer's timestamp may be from the server's
// clock, either way.
const MaxClockSkew = 5 * time.Minute

// Refusals of an answer. Every one but ErrPublicKey, ErrDecision,
// ErrBiometric and ErrNotPending counts as a failure for lockout
// (CountsAsFailure).
var (
	ErrPublicKey = errors.New("approval: device public key is not an Ed25519 public key")
	ErrDecision  = errors.New(`approval: decision must be "approve" or "deny"`)
	ErrBiometric = errors.New(`approval: biometric result must be "PASS" or "FAIL"`)
	// ErrSignature: the signature is malformed or does not verify over the
	// approval's signed bytes (an altered value changes them).
	ErrSignature = errors.New("approval: bad signature")
	// ErrTimestamp: the answer's timestamp is not RFC 3339.
	ErrTimestamp = errors.New("approval: timestamp is not RFC 3339")
	// ErrClockSkew: the answer's timestamp is more than MaxClockSkew from now.
	ErrClockSkew = errors.New("approval: timestamp is more than 5 minutes off")
	// ErrNumberMissing: number matching is on and the device sent no number.
	ErrNumberMissing = errors.New("approval: number match required and no number sent")
	// ErrNumberWrong: number matching is on and the number is not the one shown.
	ErrNumberWrong = errors.New("approval: number match required and the number is wrong")
)

// AppendSignedBytes appends what a device signs for its answer: these lines
// joined by '\n', without a final one: SignedBytesPrefix, the approval id,
// the challenge in base64url without padding (as the device receives it), the
// decision, the biometric result, the timestamp exactly as sent, and the
// lowercase hex of valuesDigest (ValuesDigest of the approval's values).
func AppendSignedBytes(dst []byte, id string, challenge *[ChallengeSize]byte, d Decision,
	b BiometricResult, timestamp string, valuesDigest *[sha256.Size]byte) []byte {
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
// value followed by a 0x00 byte, so that no two lists of values (say
// "ab"="c" and "a"="bc") hash the same input. No values hash the empty string.
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

// signedBytesRoom is enough for the signed bytes of a typical approval, so
// that verifying one builds them on the stack.
const signedBytesRoom = 256

// VerifyAnswer checks the device's answer to a at now, in the order a
// reader of the refusal would want: the key, the approval still pending,
// the answer's form, its timestamp, its signature (over a's values, so an
// altered value fails here), then, for an approval under number matching,
// the number. It does not change a.
func VerifyAnswer(pub ed25519.PublicKey, a *Approval, ans *Answer, now time.Time) error {
	if len(pub) != ed25519.PublicKeySize {
		return fmt.Errorf("%w: %d bytes", ErrPublicKey, len(pub))
	}
	switch st := a.StatusAt(now); st {
	case StatusPending:
	case StatusExpired:
		return ErrExpired
	default:
		return fmt.Errorf("%w: it is %s", ErrNotPending, st)
	}
	if ans.Decision.String() == "unknown" {
		return fmt.Errorf("%w, got %d", ErrDecision, ans.Decision)
	}
	if ans.Biometric.String() == "unknown" {
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
	digest := ValuesDigest(a.Values)
	var room [signedBytesRoom]byte
	msg := AppendSignedBytes(room[:0], a.ID, &a.Challenge, ans.Decision, ans.Biometric, ans.Timestamp, &digest)
	if !ed25519.Verify(pub, msg, sig[:]) {
		return fmt.Errorf("%w: it does not verify with the device's key", ErrSignature)
	}
	if a.NumberMatch && ans.Decision == DecisionApprove {
		switch {
		case ans.Number == "":
			return ErrNumberMissing
		case ans.Number != string(a.UserCode[:]):
			return fmt.Errorf("%w: got %q", ErrNumberWrong, ans.Number)
		}
	}
	return nil
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

// Decide applies the device's answer to a at now, after VerifyAnswer
// accepts it, and returns the status it leaves a in. rulesFailed says
// whether any configured contextual rule factor failed (the server evaluates
// them); Decide records the biometric factor in a.Factors and the server
// appends the names of the rule factors that failed.
//
// The outcome is DESIGN's: approved only if the user approved, the biometric
// result is PASS and no rule failed; a denial is denied whatever the rest;
// otherwise failed. A refused answer leaves a pending (the real device may
// still answer), except one at or past the expiry, which marks a expired.
func (a *Approval) Decide(pub ed25519.PublicKey, ans *Answer, now time.Time, rulesFailed bool) (Status, error) {
	if err := a.pendingAt(now); err != nil {
		return a.Status, err
	}
	if err := VerifyAnswer(pub, a, ans, now); err != nil {
		return a.Status, err
	}
	_ = decodeSignature(&a.Receipt.Signature, ans.Signature) // checked by VerifyAnswer
	a.Receipt.Decision, a.Receipt.Biometric, a.Receipt.Timestamp = ans.Decision, ans.Biometric, ans.Timestamp
	a.DeviceID, a.DecidedAt = ans.DeviceID, now
	switch {
	case ans.Decision == DecisionDeny:
		a.Status = StatusDenied
	case ans.Biometric != BiometricPass:
		a.Status = StatusFailed
		a.Factors = append(a.Factors, "biometric")
	case rulesFailed:
		a.Status = StatusFailed
	default:
		a.Status = StatusApproved
	}
	return a.Status, nil
}

// HasReceipt reports whether a holds a device's signed answer.
func (a *Approval) HasReceipt() bool { return a.Receipt.Decision != 0 }

// VerifyReceipt reports whether a's receipt is a signature by pub over a's
// signed bytes: what anyone holding the device's public key can check.
func (a *Approval) VerifyReceipt(pub ed25519.PublicKey) bool {
	if !a.HasReceipt() || len(pub) != ed25519.PublicKeySize {
		return false
	}
	digest := ValuesDigest(a.Values)
	var room [signedBytesRoom]byte
	msg := AppendSignedBytes(room[:0], a.ID, &a.Challenge, a.Receipt.Decision, a.Receipt.Biometric,
		a.Receipt.Timestamp, &digest)
	return ed25519.Verify(pub, msg, a.Receipt.Signature[:])
}

// CountsAsFailure reports whether a refused answer or OTP counts as one of
// the user's consecutive failures (RecordFailure): a bad signature, a
// timestamp that is malformed or too far off, an answer after expiry, a
// missing or wrong number, a wrong or replayed TOTP code. A malformed
// request or a second answer to a decided approval does not.
func CountsAsFailure(err error) bool {
	for _, f := range failures {
		if errors.Is(err, f) {
			return true
		}
	}
	return false
}

var failures = [...]error{ErrSignature, ErrTimestamp, ErrClockSkew, ErrExpired, ErrNumberMissing,
	ErrNumberWrong, ErrOTPWrong, ErrOTPReplayed}
