package approval

import (
	"crypto/sha1"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/countersign/countersign/engine/rules"
)

// TOTP parameters: RFC 6238's defaults, which every authenticator app reads
// from the provisioning URI.
const (
	TOTPDigits = 6
	TOTPPeriod = 30 * time.Second
	// TOTPSkew is how many steps either side of now are accepted, for a
	// phone clock a little off and a code typed at the end of its step.
	TOTPSkew = 1
	// MinTOTPSecret is RFC 4226's minimum shared secret, 128 bits (it
	// recommends 160, which the store's seeds have). MaxTOTPSecret is one
	// SHA-1 block: a longer key would be hashed first, and no app makes one.
	MinTOTPSecret = 16
	MaxTOTPSecret = 64
)

// Refusals of CheckTOTP, DecideOTP and ProvisioningURI. ErrOTPWrong and
// ErrOTPReplayed count as failures.
var (
	ErrOTPSecret   = fmt.Errorf("approval: TOTP secret must be %d to %d bytes", MinTOTPSecret, MaxTOTPSecret)
	ErrOTPWrong    = errors.New("approval: wrong OTP code")
	ErrOTPReplayed = errors.New("approval: OTP code already used")
	ErrOTPAccount  = errors.New("approval: TOTP issuer and account must not be empty")
)

// CheckTOTP checks the user's code against the user's TOTP seed at now and
// records the outcome on u: the code of the current 30-second step or of
// one step either side. A locked user is refused first (ErrLocked), so a
// lock cannot be worked around by guessing codes. Each step's code is
// accepted once: a code of a step at or before u.LastTOTPStep is refused as
// replayed, and an accepted one moves u.LastTOTPStep to its step, ends the
// run of failures and lifts TokenRequired (the only thing that does). A
// wrong or replayed code is a failure (RecordFailure). The three candidate
// codes are all computed and compared in constant time, so the time taken
// does not say which step, or how much of the code, matched. It does not
// allocate when the code is accepted.
func CheckTOTP(u *UserState, s *Settings, secret []byte, code string, now time.Time) (Effect, error) {
	if until, locked := u.LockedAt(now); locked {
		return Effect{LockedUntil: until}, ErrLocked
	}
	if len(secret) < MinTOTPSecret || len(secret) > MaxTOTPSecret {
		return Effect{}, fmt.Errorf("%w, got %d", ErrOTPSecret, len(secret))
	}
	step, ok := matchTOTP(secret, code, now)
	var err error
	switch {
	case !ok:
		err = ErrOTPWrong
	case step <= u.LastTOTPStep:
		err = fmt.Errorf("%w: step %d was accepted before", ErrOTPReplayed, step)
	}
	if err != nil {
		return Effect{Failure: true, LockedUntil: RecordFailure(u, s, now)}, err
	}
	u.LastTOTPStep, u.Failures, u.TokenRequired = step, 0, false
	return Effect{}, nil
}

// DecideOTP approves an OTP approval with the user's TOTP code (native
// POST /v1/approvals/{id}/otp, UNLOQ's OTP method): ErrLocked first, then
// an approval of another method or no longer pending, then CheckTOTP. A
// refused code leaves a pending; a late one marks it expired. An accepted
// code approves a, with the factor otp, and has CheckTOTP's effects on u.
func DecideOTP(a *Approval, u *UserState, s *Settings, secret []byte, code string, now time.Time) (Effect, error) {
	if until, locked := u.LockedAt(now); locked {
		return Effect{Status: a.Status, LockedUntil: until}, ErrLocked
	}
	if a.Method != MethodOTP {
		return Effect{Status: a.Status}, fmt.Errorf("%w: an OTP code to method %s", ErrWrongMethod, a.Method)
	}
	if err := a.answerableAt(now); err != nil {
		return refused(a, u, s, now, err)
	}
	eff, err := CheckTOTP(u, s, secret, code, now)
	eff.Status = a.Status
	if err != nil {
		return eff, err
	}
	a.Status, a.DecidedAt = StatusApproved, now
	a.Factors = append(a.Factors, FactorOutcome{Factor: FactorOTP, Outcome: rules.Pass, Reason: reasonOTPPass})
	eff.Status = a.Status
	return eff, nil
}

// matchTOTP finds the step within the skew whose code is code, comparing
// all candidates in constant time.
func matchTOTP(secret []byte, code string, now time.Time) (uint64, bool) {
	got, wellFormed := parseCode(code)
	step := now.Unix() / int64(TOTPPeriod/time.Second)
	matched, found := 0, 0
	for s := step - TOTPSkew; s <= step+TOTPSkew; s++ {
		if s < 0 { // before 1970: no such step, whatever the code
			continue
		}
		eq := subtle.ConstantTimeEq(int32(hotp(secret, uint64(s))), int32(got))
		// Keep the first matching step without branching on the comparison.
		matched = subtle.ConstantTimeSelect(eq&^found, int(s), matched)
		found |= eq
	}
	return uint64(matched), wellFormed && found == 1
}

// parseCode reads six ASCII digits; anything else matches no step.
func parseCode(code string) (uint32, bool) {
	if len(code) != TOTPDigits {
		return 0, false
	}
	var n uint32
	for i := 0; i < len(code); i++ {
		c := code[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint32(c-'0')
	}
	return n, true
}

// hotp is RFC 4226's HOTP with HMAC-SHA1 and 6 digits, the HMAC written out
// over two stack buffers (crypto/hmac allocates its hashes) for a key of at
// most one block, which CheckTOTP ensures. The provisioning URI still comes
// from pquerna/otp, and a test checks the codes against it.
func hotp(key []byte, counter uint64) uint32 {
	var inner [sha1.BlockSize + 8]byte
	var outer [sha1.BlockSize + sha1.Size]byte
	copy(inner[:], key)
	copy(outer[:], key)
	for i := range sha1.BlockSize {
		inner[i] ^= 0x36
		outer[i] ^= 0x5c
	}
	binary.BigEndian.PutUint64(inner[sha1.BlockSize:], counter)
	sum := sha1.Sum(inner[:])
	copy(outer[sha1.BlockSize:], sum[:])
	mac := sha1.Sum(outer[:])
	off := mac[sha1.Size-1] & 0x0f
	return (binary.BigEndian.Uint32(mac[off:]) & 0x7fffffff) % 1_000_000
}

// refuseReads is the randomness given to the OTP library: it is never
// needed (the secret is passed in), and if it were, failing is better than
// reaching for the system's randomness from the engine.
type refuseReads struct{}

func (refuseReads) Read([]byte) (int, error) {
	return 0, errors.New("approval: no randomness here: the TOTP secret is passed in")
}

var _ io.Reader = refuseReads{}

// ProvisioningURI is the otpauth://totp/... URI of secret for an
// authenticator app (the device activation answer's totpURI), labelled
// issuer:account: SHA-1, 6 digits, 30-second steps, as CheckTOTP expects.
func ProvisioningURI(secret []byte, issuer, account string) (string, error) {
	if len(secret) < MinTOTPSecret || len(secret) > MaxTOTPSecret {
		return "", fmt.Errorf("%w, got %d", ErrOTPSecret, len(secret))
	}
	if issuer == "" || account == "" {
		return "", ErrOTPAccount
	}
	key, err := totp.Generate(totp.GenerateOpts{
		Issuer: issuer, AccountName: account, Secret: secret,
		Period: uint(TOTPPeriod / time.Second), Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1,
		Rand: refuseReads{},
	})
	if err != nil {
		return "", fmt.Errorf("approval: TOTP provisioning URI: %w", err)
	}
	return key.URL(), nil
}
