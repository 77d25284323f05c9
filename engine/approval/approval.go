// Package approval is the approval state machine under countersign's three
// surfaces (native /v1/approvals, iVALT, UNLOQ): an approval is created
// pending with a challenge, answered once by the user's registered device,
// and ends approved, denied, failed, expired or cancelled. The package also
// holds what a user carries between approvals: consecutive failures and the
// lockout they lead to, the token required after a denial, the last TOTP step
// accepted, and the push-bombing window.
//
// It is pure: the clock (now) and the randomness (an io.Reader) are passed in,
// so that the same inputs give the same approval, and the store keeps the
// records in the compact binary form of AppendApproval and AppendUserState.
// The contextual rules (geo-fence, time window, IP, device) are evaluated
// elsewhere; Decide takes only whether one of them failed.
package approval

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"time"
)

// Method is how the user is asked: a push to the registered device, a TOTP
// code, or an e-mailed link (UNLOQ's EMAIL method).
type Method uint8

const (
	// MethodPush: the device receives the approval and answers it signed.
	MethodPush Method = iota + 1
	// MethodOTP: the user types the code of the TOTP seed.
	MethodOTP
	// MethodEmail: a one-time link delivered by the organization's notifier.
	MethodEmail
)

var methodNames = [...]string{MethodPush: "push", MethodOTP: "otp", MethodEmail: "email"}

// String returns the API name of m ("push", "otp", "email"), or "unknown".
func (m Method) String() string { return enumName(methodNames[:], m) }

// ParseMethod reads an API method name, exactly as String writes it.
func ParseMethod(s string) (Method, error) { return parseEnum[Method](methodNames[:], s, ErrMethod) }

// Status is where an approval is in its life. Only StatusPending moves; the
// other five are final.
type Status uint8

const (
	// StatusPending: created, not yet answered, cancelled or expired.
	StatusPending Status = iota + 1
	// StatusApproved: the user approved, the biometric check passed and no
	// configured rule failed.
	StatusApproved
	// StatusDenied: the user said no. Not a failure.
	StatusDenied
	// StatusFailed: the user approved but the biometric check or a rule
	// failed; Factors names which.
	StatusFailed
	// StatusExpired: nobody answered before ExpiresAt.
	StatusExpired
	// StatusCancelled: the requester withdrew it.
	StatusCancelled
)

var statusNames = [...]string{
	StatusPending: "pending", StatusApproved: "approved", StatusDenied: "denied",
	StatusFailed: "failed", StatusExpired: "expired", StatusCancelled: "cancelled",
}

// String returns the API name of s ("pending", "approved", ...), or "unknown".
func (s Status) String() string { return enumName(statusNames[:], s) }

// enumName is the name of v in names, whose index 0 is unused (the zero
// value of each enumeration is invalid, so a forgotten field shows).
func enumName[T ~uint8](names []string, v T) string {
	if v >= 1 && int(v) < len(names) {
		return names[v]
	}
	return "unknown"
}

// parseEnum finds s among names, exactly as spelled.
func parseEnum[T ~uint8](names []string, s string, refusal error) (T, error) {
	for i := 1; i < len(names); i++ {
		if names[i] == s {
			return T(i), nil
		}
	}
	return 0, fmt.Errorf("%w, got %q", refusal, s)
}

// Value is one of the values an approval carries (dynamic linking: an amount,
// a payee). Values are strings, kept in the order the requester gave them,
// because that order is part of what the device signs.
type Value struct {
	Key   string
	Value string
}

// ChallengeSize is the length of an approval's random challenge.
const ChallengeSize = 32

// Approval is one request for the user's consent and, once decided, its
// record: who was asked what, when it was and is due, how it ended, on which
// device, which factors failed, and the device's signed answer as a receipt
// anyone can check with the device's public key (VerifyReceipt). The zero
// value is empty; New fills one, reusing its slices, so a pooled Approval
// creates and decodes without growing once warm.
type Approval struct {
	ID      string // chosen by the caller (the store's id), unique per organization
	UserID  string
	Message string
	Values  []Value
	Method  Method
	Status  Status

	CreatedAt time.Time
	ExpiresAt time.Time
	DecidedAt time.Time // zero while pending

	Challenge [ChallengeSize]byte

	// NumberMatch: the requester is shown UserCode and the device must send
	// the number the user picked among several.
	NumberMatch bool
	UserCode    [2]byte // two ASCII digits, "00".."99"; zero without NumberMatch

	DeviceID string   // the device that answered
	Factors  []string // the failing factor names of a failed approval
	Receipt  Receipt  // the device's signed answer; zero until one is accepted
}

// Receipt is the device's accepted answer as signed: with the approval's id,
// challenge and values it rebuilds the exact signed bytes (AppendSignedBytes),
// so the record proves what the device agreed to.
type Receipt struct {
	Signature [SignatureSize]byte
	Decision  Decision
	Biometric BiometricResult
	Timestamp string // exactly as the device sent it
}

// Request is what a requester asks for: New turns it into a pending Approval.
type Request struct {
	ID      string
	UserID  string
	Message string
	Values  []Value
	Method  Method
	// Expiry is how long the approval stays pending; zero takes the
	// settings' expirySeconds (the UNLOQ surface passes its shorter wait).
	Expiry time.Duration
	// NumberMatch asks for number matching on this approval even when the
	// organization's settings do not require it.
	NumberMatch bool
}

// Errors of New and of the transitions. Every one is returned as is or
// wrapped with the value at fault.
var (
	ErrID         = errors.New("approval: id is empty")
	ErrUserID     = errors.New("approval: user id is empty")
	ErrMethod     = errors.New(`approval: method must be "push", "otp" or "email"`)
	ErrExpiry     = errors.New("approval: expiry must be between 10 and 3600 seconds")
	ErrRandom     = errors.New("approval: randomness source failed")
	ErrNotPending = errors.New("approval: not pending")
	// ErrExpired: the approval is past ExpiresAt, marked so or not. It wraps
	// ErrNotPending. Answering an expired approval counts as a failure of the
	// user; cancelling one does not.
	ErrExpired = fmt.Errorf("%w: expired", ErrNotPending)
	// ErrNotExpired: Expire before ExpiresAt.
	ErrNotExpired = errors.New("approval: not yet expired")
)

// Bounds of an approval's expiry, in seconds, as for expirySeconds.
const (
	MinExpirySeconds = 10
	MaxExpirySeconds = 3600
)

// userCodeTries bounds the rejection sampling of the user code: a fair
// source needs more than n draws with probability (56/256)^n, below 1e-42
// for 64, so 64 failed draws mean the source is broken, not unlucky.
const userCodeTries = 64

// New makes a into a pending approval for r at now, with a challenge and
// (under number matching) a user code drawn from rnd. It reuses a's slices
// and copies r.Values, so r may be reused afterwards. A request it refuses
// leaves a untouched; a failing rnd leaves a partly filled, to be discarded.
func New(a *Approval, r *Request, s *Settings, now time.Time, rnd io.Reader) error {
	switch {
	case r.ID == "":
		return ErrID
	case r.UserID == "":
		return ErrUserID
	case r.Method < MethodPush || int(r.Method) >= len(methodNames):
		return fmt.Errorf("%w, got %d", ErrMethod, r.Method)
	}
	expiry := r.Expiry
	if expiry == 0 {
		expiry = time.Duration(s.ExpirySeconds) * time.Second
	}
	if expiry < MinExpirySeconds*time.Second || expiry > MaxExpirySeconds*time.Second {
		return fmt.Errorf("%w, got %v", ErrExpiry, expiry)
	}
	a.Reset()
	a.ID, a.UserID, a.Message = r.ID, r.UserID, r.Message
	a.Values = append(a.Values, r.Values...)
	a.Method = r.Method
	a.Status = StatusPending
	a.CreatedAt = now
	a.ExpiresAt = now.Add(expiry)
	if _, err := io.ReadFull(rnd, a.Challenge[:]); err != nil {
		return fmt.Errorf("%w: %v", ErrRandom, err)
	}
	if r.NumberMatch || s.NumberMatch {
		code, err := drawUserCode(rnd)
		if err != nil {
			return err
		}
		a.NumberMatch, a.UserCode = true, code
	}
	return nil
}

// drawUserCode draws a number in 0..99 without modulo bias: a byte below 200
// is taken mod 100 (each number from exactly two bytes), a byte of 200 or
// more is drawn again.
func drawUserCode(rnd io.Reader) ([2]byte, error) {
	var b [1]byte
	for range userCodeTries {
		if _, err := io.ReadFull(rnd, b[:]); err != nil {
			return [2]byte{}, fmt.Errorf("%w: %v", ErrRandom, err)
		}
		if b[0] < 200 {
			n := b[0] % 100
			return [2]byte{'0' + n/10, '0' + n%10}, nil
		}
	}
	return [2]byte{}, fmt.Errorf("%w: %d draws in a row were 200 or more", ErrRandom, userCodeTries)
}

// Reset empties a, keeping the capacity of its slices.
func (a *Approval) Reset() {
	*a = Approval{Values: a.Values[:0], Factors: a.Factors[:0]}
}

// ChallengeString is the challenge as the device receives it and signs it:
// base64url without padding.
func (a *Approval) ChallengeString() string {
	return base64.RawURLEncoding.EncodeToString(a.Challenge[:])
}

// UserCodeString is the number shown to the requester ("47"), or "" without
// number matching.
func (a *Approval) UserCodeString() string {
	if !a.NumberMatch {
		return ""
	}
	return string(a.UserCode[:])
}

// StatusAt is the approval's status as read at now: a pending approval at or
// past its expiry reads as expired even if no sweep has marked it so yet.
func (a *Approval) StatusAt(now time.Time) Status {
	if a.Status == StatusPending && !now.Before(a.ExpiresAt) {
		return StatusExpired
	}
	return a.Status
}

// pendingAt refuses a transition of an approval that is not pending at now.
// One that is still marked pending but is past its expiry is marked expired
// here, so that the caller stores the state the refusal reports.
func (a *Approval) pendingAt(now time.Time) error {
	if a.Status == StatusExpired {
		return ErrExpired
	}
	if a.Status != StatusPending {
		return fmt.Errorf("%w: it is %s", ErrNotPending, a.Status)
	}
	if !now.Before(a.ExpiresAt) {
		a.Status, a.DecidedAt = StatusExpired, a.ExpiresAt
		return ErrExpired
	}
	return nil
}

// Cancel withdraws a pending approval at now.
func (a *Approval) Cancel(now time.Time) error {
	if err := a.pendingAt(now); err != nil {
		return err
	}
	a.Status, a.DecidedAt = StatusCancelled, now
	return nil
}

// Expire marks a pending approval expired, as the sweep does; DecidedAt is
// its expiry, not the time of the sweep, so the record does not depend on
// when the sweep ran.
func (a *Approval) Expire(now time.Time) error {
	if a.Status == StatusExpired {
		return ErrExpired
	}
	if a.Status != StatusPending {
		return fmt.Errorf("%w: it is %s", ErrNotPending, a.Status)
	}
	if now.Before(a.ExpiresAt) {
		return fmt.Errorf("%w: it expires at %s", ErrNotExpired, a.ExpiresAt.UTC().Format(time.RFC3339))
	}
	a.Status, a.DecidedAt = StatusExpired, a.ExpiresAt
	return nil
}
