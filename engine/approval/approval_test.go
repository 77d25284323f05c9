package approval_test

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/countersign/countersign/engine/approval"
)

// bytesThen is randomness that yields the given bytes, then fails.
func bytesThen(b ...byte) io.Reader { return bytes.NewReader(b) }

func newApproval(t testing.TB, rnd io.Reader, numberMatch bool) (*approval.Approval, error) {
	t.Helper()
	s := approval.DefaultSettings()
	r := approval.Request{ID: "a1", UserID: "u1", Method: approval.MethodPush, NumberMatch: numberMatch}
	a := &approval.Approval{}
	return a, approval.New(a, &r, &s, fixtureDay, rnd)
}

func TestUserCodeDrawnWithoutBias(t *testing.T) {
	challenge := make([]byte, approval.ChallengeSize)
	// Every byte below 200 is its number mod 100, so each number comes from
	// exactly two of the 200 bytes taken.
	for b := range 200 {
		a, err := newApproval(t, bytesThen(append(challenge, byte(b))...), true)
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf("%02d", b%100); a.UserCodeString() != want {
			t.Fatalf("byte %d: user code %q, want %q", b, a.UserCodeString(), want)
		}
	}
	// 200 and above are drawn again rather than folded onto 0..55.
	a, err := newApproval(t, bytesThen(append(challenge, 255, 200, 47)...), true)
	if err != nil || a.UserCodeString() != "47" {
		t.Fatalf("user code %q, %v; want 47 after two redraws", a.UserCodeString(), err)
	}
	// A source that never yields below 200 is broken: refused, no endless loop.
	_, err = newApproval(t, bytesThen(append(challenge, bytes.Repeat([]byte{0xff}, 1000)...)...), true)
	if !errors.Is(err, approval.ErrRandom) {
		t.Fatalf("stuck source: %v, want ErrRandom", err)
	}
	for _, rnd := range []io.Reader{bytesThen(challenge...), bytesThen(1, 2, 3)} {
		if _, err := newApproval(t, rnd, true); !errors.Is(err, approval.ErrRandom) {
			t.Fatalf("short source: %v, want ErrRandom", err)
		}
	}
	// Without number matching no code is drawn.
	a, err = newApproval(t, bytesThen(challenge...), false)
	if err != nil || a.NumberMatch || a.UserCodeString() != "" {
		t.Fatalf("no number match: %v %+v", err, a)
	}
}

func TestNewCopiesValues(t *testing.T) {
	s := approval.DefaultSettings()
	vals := []approval.Value{{Key: "amount", Value: "35.00"}}
	r := approval.Request{ID: "a1", UserID: "u1", Method: approval.MethodPush, Values: vals}
	var a approval.Approval
	if err := approval.New(&a, &r, &s, fixtureDay, newStream("x")); err != nil {
		t.Fatal(err)
	}
	vals[0].Value = "3500.00"
	if a.Values[0].Value != "35.00" {
		t.Fatalf("the approval shares the request's values: %v", a.Values)
	}
	// A reused approval starts empty.
	r.Values = nil
	if err := approval.New(&a, &r, &s, fixtureDay, newStream("x")); err != nil || len(a.Values) != 0 {
		t.Fatalf("reused approval kept values: %v %v", err, a.Values)
	}
}

// decided is an approval with every field of the record set.
func decided(t testing.TB) (*approval.Approval, ed25519.PrivateKey) {
	t.Helper()
	key := ed25519.NewKeyFromSeed(seed32("device d1"))
	s := approval.DefaultSettings()
	r := approval.Request{ID: "apr_1", UserID: "u1", Message: "Pay Acme?", Method: approval.MethodPush,
		NumberMatch: true, Values: []approval.Value{{Key: "amount", Value: "35.00"}, {Key: "payee", Value: "NL01"}}}
	a := &approval.Approval{}
	if err := approval.New(a, &r, &s, fixtureDay, newStream("decided")); err != nil {
		t.Fatal(err)
	}
	ans := approval.Answer{DeviceID: "d1", Decision: approval.DecisionApprove, Biometric: approval.BiometricPass,
		Timestamp: fixtureDay.Add(3 * time.Second).Format(time.RFC3339), Number: a.UserCodeString()}
	ans.Signature = signAnswer(key, a, &ans, a.Values)
	st, err := a.Decide(key.Public().(ed25519.PublicKey), &ans, fixtureDay.Add(4*time.Second), true)
	if err != nil || st != approval.StatusFailed {
		t.Fatalf("decide: %v %v", st, err)
	}
	a.Factors = append(a.Factors, "geo_fence", "time_window")
	return a, key
}

func TestApprovalCodecRoundTrip(t *testing.T) {
	full, key := decided(t)
	pending, _ := newApproval(t, newStream("p"), false)
	for _, a := range []*approval.Approval{full, pending, {ID: "x", Method: approval.MethodEmail, Status: approval.StatusCancelled}} {
		enc := approval.AppendApproval([]byte("prefix"), a)
		if string(enc[:6]) != "prefix" {
			t.Fatal("AppendApproval overwrote dst")
		}
		enc = enc[6:]
		var back approval.Approval
		back.Values = make([]approval.Value, 0, 4) // reused capacity must not leak into the result
		if err := approval.DecodeApproval(enc, &back); err != nil {
			t.Fatalf("%s: %v", a.ID, err)
		}
		if !sameApproval(a, &back) {
			t.Fatalf("round trip differs:\n%+v\n%+v", a, &back)
		}
		if got := approval.AppendApproval(nil, &back); !bytes.Equal(got, enc) {
			t.Fatalf("re-encoding differs")
		}
		// Every proper prefix, and one byte more, is refused.
		for n := range len(enc) {
			if err := approval.DecodeApproval(enc[:n], &back); !errors.Is(err, approval.ErrCorrupt) {
				t.Fatalf("prefix of %d of %d bytes: %v", n, len(enc), err)
			}
		}
		if err := approval.DecodeApproval(append(enc[:len(enc):len(enc)], 0), &back); !errors.Is(err, approval.ErrCorrupt) {
			t.Fatalf("trailing byte: %v", err)
		}
	}
	// The decoded receipt still proves what the device signed, and only that.
	var back approval.Approval
	if err := approval.DecodeApproval(approval.AppendApproval(nil, full), &back); err != nil {
		t.Fatal(err)
	}
	pub := key.Public().(ed25519.PublicKey)
	if !back.VerifyReceipt(pub) {
		t.Fatal("the stored receipt does not verify")
	}
	back.Values[0].Value = "3500.00"
	if back.VerifyReceipt(pub) {
		t.Fatal("a receipt verifies over altered values")
	}
	if back.VerifyReceipt(pub[:5]) || pending.VerifyReceipt(pub) {
		t.Fatal("VerifyReceipt accepts a short key or a missing receipt")
	}
}

// sameApproval compares approvals as the store sees them: times by instant.
func sameApproval(a, b *approval.Approval) bool {
	x, y := *a, *b
	for _, p := range []*approval.Approval{&x, &y} {
		p.CreatedAt, p.ExpiresAt, p.DecidedAt = p.CreatedAt.UTC(), p.ExpiresAt.UTC(), p.DecidedAt.UTC()
		if len(p.Values) == 0 {
			p.Values = nil
		}
		if len(p.Factors) == 0 {
			p.Factors = nil
		}
	}
	return reflect.DeepEqual(x, y)
}

func TestApprovalCodecRefusesWhatItCannotWrite(t *testing.T) {
	a, _ := decided(t)
	enc := approval.AppendApproval(nil, a)
	var back approval.Approval
	for name, mutate := range map[string]func([]byte) []byte{
		"version":        func(b []byte) []byte { b[0] = 2; return b },
		"overlong count": func(b []byte) []byte { return append([]byte{1, 0x85, 0x00}, b[2:]...) },
		"huge length":    func(b []byte) []byte { return append([]byte{1, 0xff, 0xff, 0xff, 0xff, 0x0f}, b[2:]...) },
	} {
		if err := approval.DecodeApproval(mutate(bytes.Clone(enc)), &back); !errors.Is(err, approval.ErrCorrupt) {
			t.Errorf("%s: %v", name, err)
		}
	}
	// An unknown method, status or user code, written through the struct.
	for name, mutate := range map[string]func(*approval.Approval){
		"method":    func(a *approval.Approval) { a.Method = 9 },
		"status":    func(a *approval.Approval) { a.Status = 0 },
		"user code": func(a *approval.Approval) { a.UserCode = [2]byte{'4', 'x'} },
		"decision":  func(a *approval.Approval) { a.Receipt.Decision = 7 },
		"biometric": func(a *approval.Approval) { a.Receipt.Biometric = 0 },
	} {
		b := *a
		mutate(&b)
		err := approval.DecodeApproval(approval.AppendApproval(nil, &b), &back)
		if !errors.Is(err, approval.ErrCorrupt) || back.ID != "" || len(back.Values) != 0 {
			t.Errorf("%s: %v, left %+v", name, err, back)
		}
	}
}

func TestUserStateCodecRoundTrip(t *testing.T) {
	for _, u := range []approval.UserState{
		{},
		{Failures: 4, LockedUntil: fixtureDay.Add(time.Hour), TokenRequired: true, LastTOTPStep: 59876841,
			Recent: []time.Time{fixtureDay, fixtureDay.Add(time.Second)}},
	} {
		enc := approval.AppendUserState(nil, &u)
		var back approval.UserState
		if err := approval.DecodeUserState(enc, &back); err != nil {
			t.Fatal(err)
		}
		if len(back.Recent) == 0 {
			back.Recent = nil
		}
		if !reflect.DeepEqual(u, back) {
			t.Fatalf("round trip differs:\n%+v\n%+v", u, back)
		}
		for n := range len(enc) {
			if err := approval.DecodeUserState(enc[:n], &back); !errors.Is(err, approval.ErrCorruptUserState) {
				t.Fatalf("prefix of %d bytes: %v", n, err)
			}
		}
	}
}

func TestVerifyAnswerRefusesABadKeyWithoutPanicking(t *testing.T) {
	a, err := newApproval(t, newStream("k"), false)
	if err != nil {
		t.Fatal(err)
	}
	ans := approval.Answer{Decision: approval.DecisionApprove, Biometric: approval.BiometricPass,
		Timestamp: fixtureDay.Format(time.RFC3339), Signature: strings.Repeat("A", 86)}
	for _, pub := range []ed25519.PublicKey{nil, make([]byte, 31), make([]byte, 33)} {
		if err := approval.VerifyAnswer(pub, a, &ans, fixtureDay); !errors.Is(err, approval.ErrPublicKey) {
			t.Fatalf("%d-byte key: %v", len(pub), err)
		}
	}
	if approval.CountsAsFailure(approval.ErrPublicKey) {
		t.Fatal("a server-side key problem counts against the user")
	}
	// An answer of no known decision or biometric result is malformed, not a failure.
	pub := ed25519.NewKeyFromSeed(seed32("k")).Public().(ed25519.PublicKey)
	for _, bad := range []approval.Answer{{Biometric: approval.BiometricPass}, {Decision: approval.DecisionDeny, Biometric: 3}} {
		bad.Timestamp, bad.Signature = ans.Timestamp, ans.Signature
		err := approval.VerifyAnswer(pub, a, &bad, fixtureDay)
		if !(errors.Is(err, approval.ErrDecision) || errors.Is(err, approval.ErrBiometric)) || approval.CountsAsFailure(err) {
			t.Fatalf("%+v: %v", bad, err)
		}
	}
	// A signature in padded or standard base64 is not the one accepted spelling.
	key := ed25519.NewKeyFromSeed(seed32("k"))
	good := signAnswer(key, a, &ans, a.Values)
	raw, _ := base64.RawURLEncoding.DecodeString(good)
	for _, sig := range []string{good + "==", base64.StdEncoding.EncodeToString(raw)} {
		ans.Signature = sig
		if err := approval.VerifyAnswer(pub, a, &ans, fixtureDay); !errors.Is(err, approval.ErrSignature) {
			t.Fatalf("signature %q: %v", sig, err)
		}
	}
	ans.Signature = good
	if err := approval.VerifyAnswer(key.Public().(ed25519.PublicKey), a, &ans, fixtureDay); err != nil {
		t.Fatalf("the good signature: %v", err)
	}
}

func TestParseNames(t *testing.T) {
	for _, c := range []struct {
		s   string
		err error
		f   func(string) error
	}{
		{"PASS", nil, func(s string) error { _, err := approval.ParseBiometric(s); return err }},
		{"pass", approval.ErrBiometric, func(s string) error { _, err := approval.ParseBiometric(s); return err }},
		{"approve", nil, func(s string) error { _, err := approval.ParseDecision(s); return err }},
		{"Approve", approval.ErrDecision, func(s string) error { _, err := approval.ParseDecision(s); return err }},
		{"email", nil, func(s string) error { _, err := approval.ParseMethod(s); return err }},
		{"unknown", approval.ErrMethod, func(s string) error { _, err := approval.ParseMethod(s); return err }},
	} {
		if err := c.f(c.s); !errors.Is(err, c.err) || (c.err == nil) != (err == nil) {
			t.Errorf("%q: %v, want %v", c.s, err, c.err)
		}
	}
	if approval.Status(0).String() != "unknown" || approval.StatusCancelled.String() != "cancelled" {
		t.Error("status names")
	}
}

func TestSettingsValidateTheWindow(t *testing.T) {
	s := approval.DefaultSettings()
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	s.RateLimit = 0
	if err := s.Validate(); !errors.Is(err, approval.ErrSettingRange) || !strings.Contains(err.Error(), "rateLimit") {
		t.Fatalf("rate limit 0: %v", err)
	}
	if err := (&approval.Settings{}).Validate(); err == nil {
		t.Fatal("the zero settings validate")
	}
	d := approval.DefaultSettings()
	back, err := approval.ParseSettings(d.AppendJSON(nil))
	if err != nil || back != d {
		t.Fatalf("settings JSON does not round-trip: %v %+v", err, back)
	}
}

func TestProvisioningURI(t *testing.T) {
	uri, err := approval.ProvisioningURI(totpSecret, "Demo Bank", "alice@example.com")
	if err != nil {
		t.Fatal(err)
	}
	key, err := otp.NewKeyFromURL(uri)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(uri, "otpauth://totp/") || key.Issuer() != "Demo Bank" || key.AccountName() != "alice@example.com" ||
		key.Period() != 30 || key.Digits() != otp.DigitsSix || key.Algorithm() != otp.AlgorithmSHA1 ||
		key.Secret() != base32NoPad(totpSecret) {
		t.Fatalf("URI %s reads as issuer %q account %q period %d digits %v algorithm %v secret %q",
			uri, key.Issuer(), key.AccountName(), key.Period(), key.Digits(), key.Algorithm(), key.Secret())
	}
	// What an app provisioned from the URI shows is what CheckTOTP accepts.
	now := fixtureDay.Add(13 * time.Hour)
	code, err := totp.GenerateCode(key.Secret(), now)
	if err != nil {
		t.Fatal(err)
	}
	var u approval.UserState
	if err := approval.CheckTOTP(totpSecret, code, now, &u); err != nil {
		t.Fatalf("the app's code %s: %v", code, err)
	}
	for _, c := range [][3]string{{"", "Demo Bank", "a"}, {"s", "", "a"}, {"s", "Demo Bank", ""}} {
		if _, err := approval.ProvisioningURI([]byte(c[0]), c[1], c[2]); err == nil {
			t.Errorf("%q: no error", c)
		}
	}
	if err := approval.CheckTOTP(nil, code, now, &u); !errors.Is(err, approval.ErrOTPSecret) {
		t.Errorf("empty secret: %v", err)
	}
}

// ExampleAppendSignedBytes is the device-protocol example of the README:
// the bytes a device signs for one answer, the values digest inside them,
// and the signature, with the device key from seed 00 01 .. 1f and the
// challenge 20 21 .. 3f. The signature was checked against a second
// Ed25519 implementation (Python's cryptography) when it was pinned.
func ExampleAppendSignedBytes() {
	seed := make([]byte, ed25519.SeedSize)
	var challenge [approval.ChallengeSize]byte
	for i := range seed {
		seed[i], challenge[i] = byte(i), byte(0x20+i)
	}
	key := ed25519.NewKeyFromSeed(seed)
	values := []approval.Value{{Key: "amount", Value: "35.00"}, {Key: "payee", Value: "NL91ABNA0417164300"}}
	digest := approval.ValuesDigest(values)
	msg := approval.AppendSignedBytes(nil, "apr_01JEXAMPLE", &challenge, approval.DecisionApprove,
		approval.BiometricPass, "2026-12-03T13:00:05Z", &digest)
	sig := ed25519.Sign(key, msg)
	empty := approval.ValuesDigest(nil)

	fmt.Printf("signed bytes:\n%s\n", msg)
	fmt.Printf("values digest: %x\n", digest)
	fmt.Printf("no values:     %x\n", empty)
	fmt.Printf("public key: %s\n", base64.RawURLEncoding.EncodeToString(key.Public().(ed25519.PublicKey)))
	fmt.Printf("signature:  %s\n", base64.RawURLEncoding.EncodeToString(sig))
	// Output:
	// signed bytes:
	// countersign-approval-v1
	// apr_01JEXAMPLE
	// ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8
	// approve
	// PASS
	// 2026-12-03T13:00:05Z
	// f9c5a4cdfc051301f4b58aa5e2a482d8627467f497705ce11f6fa55a99b97691
	// values digest: f9c5a4cdfc051301f4b58aa5e2a482d8627467f497705ce11f6fa55a99b97691
	// no values:     e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
	// public key: A6EHv_POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg
	// signature:  fof4yiv6EOsUlRmDbIJgB2wlKM1VwobJOzNNJ8znmGO-Z4IgomiWJaq_nXyqZA4sgythwzOJH5wgQDYwT5bDBA
}
