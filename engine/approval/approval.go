// Package approval is the approval state machine under countersign's three
// surfaces (native /v1/approvals, iVALT, UNLOQ): an approval is created
// pending with a challenge, answered once (by the user's registered device,
// a TOTP code or an e-mailed link), and ends approved, denied, failed,
// expired or cancelled. The package also holds what a user carries between
// approvals: consecutive failures and the lockout they lead to, the token
// required after a denial, the last TOTP step accepted, and the push-bombing
// window.
//
// It is pure: the clock (now) and the randomness (an io.Reader) are passed in,
// so that the same inputs give the same approval, and the store keeps the
// records in the compact binary form of AppendApproval and AppendUserState.
// The contextual rules (geo-fence, time window, IP, device) are evaluated by
// engine/rules; Answer takes their Result and records every factor.
//
// # Serialisation
//
// Every transition is a read-modify-write of an Approval and of the user's
// UserState, and nothing here locks: callers must serialise them per user
// (which covers the user's approvals too). The store holds a per-user lock
// around reading both records, calling the transition and writing them back;
// and both records carry a Version the store compares and sets on write, so
// that a second countersign node writing the same user is refused rather
// than lost. The package never changes Version: it is the store's.
package approval

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"time"
	"unicode/utf8"

	"github.com/countersign/countersign/engine/rules"
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
	// configured rule failed (or the TOTP code or the link was accepted).
	StatusApproved
	// StatusDenied: the user said no. Not a failure.
	StatusDenied
	// StatusFailed: the user approved but the biometric check, the number
	// match or a rule failed; Factors says which.
	StatusFailed
	// StatusExpired: nobody answered before ExpiresAt.
	StatusExpired
	// StatusCancelled: the requester withdrew it, or a denial of another
	// approval of the user did.
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

// Limits on a request. The id is a line of the signed bytes and the values
// are hashed with 0x00 after each key and value, so New refuses what would
// make either ambiguous (a control character in the id, a NUL in a key or
// value, a key given twice); the sizes keep an approval small enough to
// show on a phone and to hold per user.
const (
	MaxIDLen      = 128
	MaxValues     = 32
	MaxKeyLen     = 64
	MaxValueLen   = 1024
	MaxMessageLen = 1024
	MaxUserIDLen  = 256
)

// Approval is one request for the user's consent and, once decided, its
// record: who was asked what, from which IP, when it was and is due, how it
// ended, on which device, every factor with its outcome and reason and the
// rules version that decided them, the device's signed answer as a receipt
// anyone can check with the device's public key (VerifyReceipt), and the
// one-time tokens it hands out. The zero value is empty; New fills one,
// reusing its slices, so a pooled Approval creates without growing once warm.
type Approval struct {
	// Version is the store's compare-and-set counter (see the package
	// comment); the transitions leave it alone.
	Version uint64

	ID       string // chosen by the caller (the store's id), unique per organization
	UserID   string
	Message  string
	Values   []Value
	Method   Method
	Status   Status
	SourceIP netip.Addr // the approval's source IP; the zero Addr when none was known

	CreatedAt time.Time
	ExpiresAt time.Time
	DecidedAt time.Time // zero while pending

	Challenge [ChallengeSize]byte

	// NumberMatch: the requester is shown UserCode and the device must send
	// the number the user picked among several. Push approvals only.
	NumberMatch bool
	UserCode    [2]byte // two ASCII digits, "00".."99"; zero without NumberMatch

	DeviceID     string          // the device that answered
	RulesVersion uint64          // the rules version of the Result the decision used; 0 when none
	Factors      []FactorOutcome // every factor of the decision, in the order rendered
	Receipt      Receipt         // the device's signed answer; zero until one is accepted
	// Location is where the device said it was when its answer was
	// accepted; not Present when it sent none (or answered otherwise).
	Location rules.Location

	// LinkToken is the e-mailed link of a MethodEmail approval
	// (IssueLinkToken); ResultToken is the one-time token an approved
	// approval yields (IssueResultToken). Both are kept as SHA-256 only.
	LinkToken   OneTimeToken
	ResultToken OneTimeToken
}

// Receipt is the device's accepted answer as signed: with the approval's id,
// challenge and values it rebuilds the exact signed bytes (AppendSignedBytes),
// so the record proves what the device agreed to.
type Receipt struct {
	Signature [SignatureSize]byte
	Decision  Decision
	Biometric Biometric
	Timestamp string // exactly as the device sent it
}

// Request is what a requester asks for: New turns it into a pending Approval.
type Request struct {
	ID       string
	UserID   string
	Message  string
	Values   []Value
	Method   Method
	SourceIP netip.Addr // "ip" of the request, else the caller's address
	// Expiry is how long the approval stays pending; zero takes the
	// settings' expirySeconds (the UNLOQ surface passes its shorter wait).
	Expiry time.Duration
	// NumberMatch asks for number matching on this approval even when the
	// organization's settings do not require it. Push approvals only.
	NumberMatch bool
}

// Errors of New and of the transitions. Every one is returned as is or
// wrapped with the value at fault.
var (
	ErrID          = fmt.Errorf("approval: id must be 1 to %d bytes without control characters", MaxIDLen)
	ErrUserID      = fmt.Errorf("approval: user id must be 1 to %d bytes", MaxUserIDLen)
	ErrMessage     = fmt.Errorf("approval: message is longer than %d bytes", MaxMessageLen)
	ErrTooMany     = fmt.Errorf("approval: more than %d values", MaxValues)
	ErrValueKey    = fmt.Errorf("approval: a value's key must be 1 to %d bytes without NUL", MaxKeyLen)
	ErrValue       = fmt.Errorf("approval: a value must be at most %d bytes without NUL", MaxValueLen)
	ErrDuplicate   = errors.New("approval: a value's key is given twice")
	ErrSourceIP    = errors.New("approval: source IP must not carry an IPv6 zone")
	ErrNumberMatch = errors.New("approval: number matching is for push approvals only")
	ErrMethod      = errors.New(`approval: method must be "push", "otp" or "email"`)
	ErrExpiry      = errors.New("approval: expiry must be between 10 and 3600 seconds")
	ErrRandom      = errors.New("approval: randomness source failed")
	ErrNotPending  = errors.New("approval: not pending")
	// ErrExpired: the approval is past ExpiresAt, marked so or not. It wraps
	// ErrNotPending and is no failure of the user's (Cancel and Expire
	// return it); an answer that comes too late is ErrLate.
	ErrExpired = fmt.Errorf("%w: expired", ErrNotPending)
	// ErrLate: an answer (device, OTP) to an expired approval. It wraps
	// ErrExpired and counts as a failure.
	ErrLate = fmt.Errorf("%w before the answer came", ErrExpired)
	// ErrNotExpired: Expire before ExpiresAt.
	ErrNotExpired = errors.New("approval: not yet expired")
	// ErrWrongMethod: an answer of a kind the approval's method does not
	// take (a device answer to an OTP approval, a link to a push).
	ErrWrongMethod = errors.New("approval: the approval's method does not take this answer")
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
// Settings that do not Validate are replaced by the defaults.
func New(a *Approval, r *Request, s *Settings, now time.Time, rnd io.Reader) error {
	if err := r.check(); err != nil {
		return err
	}
	cfg := s.orDefaults()
	expiry := r.Expiry
	if expiry == 0 {
		expiry = time.Duration(cfg.ExpirySeconds) * time.Second
	}
	if expiry < MinExpirySeconds*time.Second || expiry > MaxExpirySeconds*time.Second {
		return fmt.Errorf("%w, got %v", ErrExpiry, expiry)
	}
	a.Reset()
	a.ID, a.UserID, a.Message = r.ID, r.UserID, r.Message
	a.Values = append(a.Values, r.Values...)
	a.Method = r.Method
	a.Status = StatusPending
	a.SourceIP = r.SourceIP.Unmap()
	a.CreatedAt = now
	a.ExpiresAt = now.Add(expiry)
	if _, err := io.ReadFull(rnd, a.Challenge[:]); err != nil {
		return fmt.Errorf("%w: %v", ErrRandom, err)
	}
	if r.NumberMatch || cfg.NumberMatch && r.Method == MethodPush {
		code, err := drawUserCode(rnd)
		if err != nil {
			return err
		}
		a.NumberMatch, a.UserCode = true, code
	}
	return nil
}

// check refuses a request whose fields the signed bytes, the values digest
// or the limits cannot take, naming the first one at fault.
func (r *Request) check() error {
	switch {
	case len(r.ID) == 0 || len(r.ID) > MaxIDLen || hasControl(r.ID):
		return fmt.Errorf("%w, got %q", ErrID, r.ID)
	case len(r.UserID) == 0 || len(r.UserID) > MaxUserIDLen:
		return ErrUserID
	case len(r.Message) > MaxMessageLen:
		return fmt.Errorf("%w: %d bytes", ErrMessage, len(r.Message))
	case r.Method < MethodPush || int(r.Method) >= len(methodNames):
		return fmt.Errorf("%w, got %d", ErrMethod, r.Method)
	case r.NumberMatch && r.Method != MethodPush:
		return fmt.Errorf("%w, got method %s", ErrNumberMatch, r.Method)
	case r.SourceIP.Zone() != "":
		return fmt.Errorf("%w, got %s", ErrSourceIP, r.SourceIP)
	case len(r.Values) > MaxValues:
		return fmt.Errorf("%w: %d", ErrTooMany, len(r.Values))
	}
	for i := range r.Values {
		v := &r.Values[i]
		switch {
		case len(v.Key) == 0 || len(v.Key) > MaxKeyLen:
			return fmt.Errorf("%w: values[%d] has a key of %d bytes", ErrValueKey, i, len(v.Key))
		case hasNUL(v.Key):
			return fmt.Errorf("%w: values[%d] has key %q, with a NUL", ErrValueKey, i, v.Key)
		case len(v.Value) > MaxValueLen:
			return fmt.Errorf("%w: values[%d] (%q) is %d bytes", ErrValue, i, v.Key, len(v.Value))
		case hasNUL(v.Value):
			return fmt.Errorf("%w: values[%d] (%q) has a NUL", ErrValue, i, v.Key)
		}
		for j := range i {
			if r.Values[j].Key == v.Key {
				return fmt.Errorf("%w: %q at values[%d] and values[%d]", ErrDuplicate, v.Key, j, i)
			}
		}
	}
	return nil
}

// hasControl reports an ASCII control character (a '\n' would end the id's
// signed line early) or a byte that is not UTF-8.
func hasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return true
		}
	}
	return !utf8.ValidString(s)
}

func hasNUL(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == 0 {
			return true
		}
	}
	return false
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

// answerableAt is pendingAt for an answer: too late is ErrLate, a failure.
func (a *Approval) answerableAt(now time.Time) error {
	err := a.pendingAt(now)
	if err == ErrExpired {
		return ErrLate
	}
	return err
}

// Cancel withdraws a pending approval at now. None of its refusals counts
// as a failure of the user's.
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
