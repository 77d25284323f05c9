package approval_test

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base32"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"
	"github.com/pquerna/otp"
	"github.com/pquerna/otp/hotp"

	"github.com/countersign/countersign/engine/approval"
	"github.com/countersign/countersign/engine/rules"
)

// TestFixtures runs fixtures/approval/*.txt. Times are written HH:MM:SS on
// fixtureDay (UTC), @<unix seconds>, or RFC 3339. Each file starts with the
// default settings, the world's rules (one fence, "office"), no approvals
// and a user u1 with a clean slate. Ids and values may use Go escapes
// (\x00, \n).
//
//	settings [zero] [window=N/Mm]
//	                             parse the input as the "approvals" settings object (empty:
//	                             the defaults; zero: the zero Settings, which are invalid;
//	                             window: the push-bombing window, not in the document) and
//	                             use it from now on
//	new [id=a1] [user=u1] at=T [values=k:v,...] [method=push] [expires=30s] [number-match]
//	    [ip=ADDR] [message-bytes=N] [value-count=N] [key-bytes=N] [value-bytes=N]
//	                             create an approval (the last one created is the default id);
//	                             an email approval gets its link token; the sizes build a
//	                             message, N values, or one value of that key and value size
//	answer [id=] decision=approve|deny biometric=PASS|FAIL [ts=T|literal] at=T
//	       [sign=ok|bad|altered-values|garbled] [number=47] [rules=pass|fail]
//	       [device=d1|d2|small-order]
//	                             the device answers through approval.Answer (ts defaults to
//	                             at, sign to ok; rules=fail answers from outside the fence;
//	                             d2 is another user's device; small-order is a forged
//	                             answer under the identity point as key)
//	factors [id=]                the approval's factors as the APIs render them
//	cancel [id=] at=T | expire [id=] at=T | status [id=] at=T
//	admit pending=N [earliest=T] [method=otp] [honour-token] at=T
//	                             may one more approval be sent
//	fail at=T | unlock           record a failure, an operator's unlock
//	new-user                     start again from a user with a clean slate
//	otp code=NNNNNN|offset=N at=T
//	                             check a TOTP code (offset: the code of the step N steps
//	                             from at's) with CheckTOTP
//	otp-approve [id=] code=|offset= at=T
//	                             approve an OTP approval with DecideOTP
//	link [id=] [token=wrong] at=T
//	                             open the e-mailed link of an email approval (DecideLink)
//	issue-result [id=] at=T | redeem [id=] [token=wrong] at=T
//	                             the one-time result token
//	state [at=T]                 the user's state (at: as read then, a due lock lifted)
//
// go test -run TestFixtures ./engine/approval -rewrite regenerates the expectations.
func TestFixtures(t *testing.T) {
	datadriven.Walk(t, "../../fixtures/approval", func(t *testing.T, path string) {
		w := newWorld(t)
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			return w.run(t, d)
		})
	})
}

var fixtureDay = time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC)

// totpSecret is RFC 6238's SHA-1 test secret, so the fixtures can use the
// RFC's own codes (the last 6 of its 8 digits).
var totpSecret = []byte("12345678901234567890")

// worldRules is the organization's rules in the fixtures: the Amsterdam
// office as the one fence, at version 7.
const worldRules = `{"geoFences":[{"id":"office","lat":52.370216,"lon":4.895168,"radiusMeters":1000}]}`

type world struct {
	settings  approval.Settings
	rnd       *stream
	rules     *rules.Compiled
	user      approval.UserState
	approvals map[string]*approval.Approval
	links     map[string]string
	results   map[string]string
	last      string
	device    ed25519.PrivateKey
	other     ed25519.PrivateKey
}

// compileWorldRules is worldRules, compiled at version 7.
func compileWorldRules(t testing.TB) *rules.Compiled {
	t.Helper()
	r, err := rules.Parse([]byte(worldRules))
	if err != nil {
		t.Fatal(err)
	}
	c, err := rules.Compile(r, 7)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func newWorld(t testing.TB) *world {
	return &world{
		settings:  approval.DefaultSettings(),
		rnd:       newStream("countersign approval fixtures"),
		rules:     compileWorldRules(t),
		approvals: map[string]*approval.Approval{},
		links:     map[string]string{},
		results:   map[string]string{},
		device:    ed25519.NewKeyFromSeed(seed32("device d1")),
		other:     ed25519.NewKeyFromSeed(seed32("some other device")),
	}
}

func seed32(s string) []byte {
	sum := sha256.Sum256([]byte(s))
	return sum[:]
}

// stream is a fixed randomness stream: SHA-256 of a seed and a block
// counter, so that challenges and user codes are stable across runs.
type stream struct {
	seed  []byte
	block uint64
	buf   []byte
}

func newStream(seed string) *stream { return &stream{seed: []byte(seed)} }

func (s *stream) Read(p []byte) (int, error) {
	for n := 0; n < len(p); {
		if len(s.buf) == 0 {
			var ctr [8]byte
			binary.BigEndian.PutUint64(ctr[:], s.block)
			s.block++
			sum := sha256.Sum256(append(append([]byte{}, s.seed...), ctr[:]...))
			s.buf = sum[:]
		}
		c := copy(p[n:], s.buf)
		s.buf = s.buf[c:]
		n += c
	}
	return len(p), nil
}

func (w *world) run(t *testing.T, d *datadriven.TestData) string {
	switch d.Cmd {
	case "settings":
		if d.HasArg("zero") {
			w.settings = approval.Settings{}
			return "zero settings: " + w.settings.Validate().Error() + "\n"
		}
		s, err := approval.ParseSettings([]byte(d.Input))
		if err != nil {
			return "error: " + err.Error() + "\n"
		}
		if d.HasArg("window") {
			var arg string
			d.ScanArgs(t, "window", &arg)
			if _, err := fmt.Sscanf(arg, "%d/%dm", &s.RateLimit, &s.RateWindowMinutes); err != nil {
				d.Fatalf(t, "window=%s: %v", arg, err)
			}
		}
		w.settings = s
		return fmt.Sprintf("%s window=%d/%dm\n", s.AppendJSON(nil), s.RateLimit, s.RateWindowMinutes)
	case "new":
		return w.create(t, d)
	case "answer":
		return w.answer(t, d)
	case "factors":
		return string(w.approval(t, d).AppendFactorsJSON(nil)) + "\n"
	case "cancel", "expire":
		a := w.approval(t, d)
		now := w.at(t, d)
		var err error
		if d.Cmd == "cancel" {
			err = a.Cancel(now)
		} else {
			err = a.Expire(now)
		}
		return outcome(approval.Effect{Failure: approval.CountsAsFailure(err)}, err) + w.describe(a)
	case "status":
		return w.approval(t, d).StatusAt(w.at(t, d)).String() + "\n"
	case "admit":
		var adm approval.Admission
		d.ScanArgs(t, "pending", &adm.Pending)
		if d.HasArg("earliest") {
			var s string
			d.ScanArgs(t, "earliest", &s)
			adm.EarliestExpiry = w.parse(t, d, s)
		}
		adm.Method = approval.MethodPush
		if d.HasArg("method") {
			adm.Method = w.method(t, d)
		}
		adm.HonourTokenRequired = d.HasArg("honour-token")
		until, err := approval.Admit(&w.user, &w.settings, &adm, w.at(t, d))
		out := "admitted"
		if err != nil {
			out = "refused: " + err.Error()
			if !until.IsZero() {
				out += " until=" + clock(until)
			}
		}
		return out + "\n" + w.state()
	case "fail":
		approval.RecordFailure(&w.user, &w.settings, w.at(t, d))
		return w.state()
	case "unlock":
		approval.Unlock(&w.user)
		return w.state()
	case "new-user":
		w.user = approval.UserState{}
		return w.state()
	case "otp":
		code, now := w.code(t, d)
		eff, err := approval.CheckTOTP(&w.user, &w.settings, totpSecret, code, now)
		return fmt.Sprintf("code %q: %s%s", code, outcome(eff, err), w.state())
	case "otp-approve":
		a := w.approval(t, d)
		code, now := w.code(t, d)
		eff, err := approval.DecideOTP(a, &w.user, &w.settings, totpSecret, code, now)
		return fmt.Sprintf("code %q: %s%s%s", code, outcome(eff, err), w.describe(a), w.state())
	case "link":
		a := w.approval(t, d)
		token := w.links[a.ID]
		if d.HasArg("token") {
			token = "wrong" + token[5:]
		}
		eff, err := approval.DecideLink(a, &w.user, token, w.at(t, d))
		return outcome(eff, err) + w.describe(a) + w.state()
	case "issue-result":
		a := w.approval(t, d)
		token, err := approval.IssueResultToken(a, w.rnd, w.at(t, d))
		if err != nil {
			return "refused: " + err.Error() + "\n"
		}
		w.results[a.ID] = token
		return fmt.Sprintf("issued %d characters\n", len(token)) + w.describe(a)
	case "redeem":
		a := w.approval(t, d)
		token := w.results[a.ID]
		if d.HasArg("token") {
			token = strings.Repeat("A", 43)
		}
		return outcome(approval.Effect{}, approval.RedeemToken(a, token, w.at(t, d))) + w.describe(a)
	case "state":
		if d.HasArg("at") {
			w.user.LockedAt(w.at(t, d))
		}
		return w.state()
	}
	d.Fatalf(t, "unknown command %q", d.Cmd)
	return ""
}

// unquote reads a fixture argument with Go escapes.
func unquote(t *testing.T, d *datadriven.TestData, s string) string {
	u, err := strconv.Unquote(`"` + s + `"`)
	if err != nil {
		d.Fatalf(t, "%q: %v", s, err)
	}
	return u
}

func (w *world) method(t *testing.T, d *datadriven.TestData) approval.Method {
	var s string
	d.ScanArgs(t, "method", &s)
	m, err := approval.ParseMethod(s)
	if err != nil {
		d.Fatalf(t, "%v", err)
	}
	return m
}

func (w *world) create(t *testing.T, d *datadriven.TestData) string {
	r := approval.Request{ID: "a1", UserID: "u1", Message: "Approve the payment?", Method: approval.MethodPush}
	if d.HasArg("id") {
		d.ScanArgs(t, "id", &r.ID)
		r.ID = unquote(t, d, r.ID)
	}
	if d.HasArg("user") {
		d.ScanArgs(t, "user", &r.UserID)
	}
	if d.HasArg("method") {
		var m string
		d.ScanArgs(t, "method", &m)
		var err error
		if r.Method, err = approval.ParseMethod(m); err != nil {
			return "error: " + err.Error() + "\n"
		}
	}
	if d.HasArg("expires") {
		var s string
		d.ScanArgs(t, "expires", &s)
		var err error
		if r.Expiry, err = time.ParseDuration(s); err != nil {
			d.Fatalf(t, "expires: %v", err)
		}
	}
	if d.HasArg("ip") {
		var s string
		d.ScanArgs(t, "ip", &s)
		var err error
		if r.SourceIP, err = netip.ParseAddr(s); err != nil {
			d.Fatalf(t, "ip: %v", err)
		}
	}
	if d.HasArg("message-bytes") {
		var n int
		d.ScanArgs(t, "message-bytes", &n)
		r.Message = strings.Repeat("m", n)
	}
	r.NumberMatch = d.HasArg("number-match")
	if d.HasArg("values") {
		var s string
		d.ScanArgs(t, "values", &s)
		for _, kv := range strings.Split(s, ",") {
			k, v, _ := strings.Cut(kv, ":")
			r.Values = append(r.Values, approval.Value{Key: unquote(t, d, k), Value: unquote(t, d, v)})
		}
	}
	if d.HasArg("value-count") {
		var n int
		d.ScanArgs(t, "value-count", &n)
		for i := range n {
			r.Values = append(r.Values, approval.Value{Key: fmt.Sprintf("k%d", i), Value: "v"})
		}
	}
	if d.HasArg("key-bytes") || d.HasArg("value-bytes") {
		var k, v int
		d.MaybeScanArgs(t, "key-bytes", &k)
		d.MaybeScanArgs(t, "value-bytes", &v)
		r.Values = append(r.Values, approval.Value{Key: "k" + strings.Repeat("k", max(k-1, 0)), Value: strings.Repeat("v", v)})
	}
	a := &approval.Approval{}
	if err := approval.New(a, &r, &w.settings, w.at(t, d), w.rnd); err != nil {
		return "error: " + err.Error() + "\n"
	}
	if a.Method == approval.MethodEmail {
		token, err := approval.IssueLinkToken(a, w.rnd)
		if err != nil {
			d.Fatalf(t, "%v", err)
		}
		w.links[a.ID] = token
	}
	w.approvals[a.ID] = a
	w.last = a.ID
	return w.describe(a)
}

func (w *world) answer(t *testing.T, d *datadriven.TestData) string {
	a := w.approval(t, d)
	now := w.at(t, d)
	ans := approval.DeviceAnswer{Timestamp: now.Format(time.RFC3339)}
	var s string
	d.ScanArgs(t, "decision", &s)
	var err error
	if ans.Decision, err = approval.ParseDecision(s); err != nil {
		d.Fatalf(t, "%v", err)
	}
	d.ScanArgs(t, "biometric", &s)
	if ans.Biometric, err = approval.ParseBiometric(s); err != nil {
		d.Fatalf(t, "%v", err)
	}
	if d.HasArg("ts") {
		d.ScanArgs(t, "ts", &s)
		if ts, ok := parseTime(s); ok && !strings.Contains(s, "T") {
			s = ts.Format(time.RFC3339)
		}
		ans.Timestamp = s
	}
	if d.HasArg("number") {
		d.ScanArgs(t, "number", &ans.Number)
	}
	dev := approval.Device{ID: "d1", UserID: "u1", PublicKey: w.device.Public().(ed25519.PublicKey)}
	key := w.device
	if d.HasArg("device") {
		d.ScanArgs(t, "device", &s)
		switch s {
		case "d1":
		case "d2":
			dev = approval.Device{ID: "d2", UserID: "u2", PublicKey: w.other.Public().(ed25519.PublicKey)}
			key = w.other
		case "small-order":
			dev.PublicKey = identityPoint()
			ans.Signature = forgedSignature()
		default:
			d.Fatalf(t, "device=%s", s)
		}
	}
	sign := "ok"
	if d.HasArg("sign") {
		d.ScanArgs(t, "sign", &sign)
	}
	values := a.Values
	switch sign {
	case "ok":
	case "bad":
		key = w.other
	case "altered-values":
		values = append([]approval.Value{}, a.Values...)
		values[0].Value += "0" // 35.00 becomes 35.000: the same amount to a person, not to the hash
	case "garbled":
		ans.Signature = "not-a-signature"
	default:
		d.Fatalf(t, "sign=%s", sign)
	}
	if ans.Signature == "" {
		ans.Signature = signAnswer(key, a, &ans, values)
	}
	in := rules.Input{
		UserID: []byte(a.UserID), Biometric: ans.Biometric, IP: a.SourceIP,
		Location: rules.Location{Present: true, Lat: 52.3702, Lon: 4.8952}, // the office
	}
	if d.HasArg("rules") {
		d.ScanArgs(t, "rules", &s)
		if s == "fail" {
			in.Location.Lat, in.Location.Lon = 48.8566, 2.3522 // Paris
		}
	}
	var res rules.Result
	rules.Evaluate(w.rules, &in, now, &res)
	eff, err := approval.Answer(a, &w.user, &w.settings, &dev, &ans, &res, now)
	return outcome(eff, err) + w.describe(a) + w.state()
}

// identityPoint is the encoding of the identity point: a small-order key.
func identityPoint() ed25519.PublicKey {
	pub := make(ed25519.PublicKey, ed25519.PublicKeySize)
	pub[0] = 1
	return pub
}

// forgedSignature is R = the identity, S = 0: under the identity point as
// the key it verifies over any message (crypto/ed25519 accepts it).
func forgedSignature() string {
	sig := make([]byte, ed25519.SignatureSize)
	sig[0] = 1
	return base64.RawURLEncoding.EncodeToString(sig)
}

// signAnswer is the device's side: sign the answer's lines over values.
func signAnswer(key ed25519.PrivateKey, a *approval.Approval, ans *approval.DeviceAnswer, values []approval.Value) string {
	digest := approval.ValuesDigest(values)
	msg := approval.AppendSignedBytes(nil, a.ID, &a.Challenge, ans.Decision, ans.Biometric, ans.Timestamp, &digest)
	return base64.RawURLEncoding.EncodeToString(ed25519.Sign(key, msg))
}

// code reads code= or offset= (the code of the step offset steps from at's).
func (w *world) code(t *testing.T, d *datadriven.TestData) (string, time.Time) {
	now := w.at(t, d)
	var code string
	switch {
	case d.HasArg("code"):
		d.ScanArgs(t, "code", &code)
	case d.HasArg("offset"):
		var off int64
		d.ScanArgs(t, "offset", &off)
		step := now.Unix()/30 + off
		var err error
		code, err = hotp.GenerateCodeCustom(base32NoPad(totpSecret), uint64(step),
			hotp.ValidateOpts{Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
		if err != nil {
			d.Fatalf(t, "%v", err)
		}
	default:
		d.Fatalf(t, "otp needs code= or offset=")
	}
	return code, now
}

func (w *world) approval(t *testing.T, d *datadriven.TestData) *approval.Approval {
	id := w.last
	if d.HasArg("id") {
		d.ScanArgs(t, "id", &id)
	}
	a, ok := w.approvals[id]
	if !ok {
		d.Fatalf(t, "no approval %q", id)
	}
	return a
}

func (w *world) at(t *testing.T, d *datadriven.TestData) time.Time {
	var s string
	d.ScanArgs(t, "at", &s)
	return w.parse(t, d, s)
}

func (w *world) parse(t *testing.T, d *datadriven.TestData, s string) time.Time {
	ts, ok := parseTime(s)
	if !ok {
		d.Fatalf(t, "%s: not HH:MM:SS, @unix or RFC 3339", s)
	}
	return ts
}

func parseTime(s string) (time.Time, bool) {
	if strings.HasPrefix(s, "@") {
		n, err := strconv.ParseInt(s[1:], 10, 64)
		return time.Unix(n, 0).UTC(), err == nil
	}
	if c, err := time.Parse("15:04:05", s); err == nil {
		return fixtureDay.Add(c.Sub(time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC))), true
	}
	ts, err := time.Parse(time.RFC3339, s)
	return ts, err == nil
}

// clock writes a time on fixtureDay as HH:MM:SS, any other as RFC 3339.
func clock(ts time.Time) string {
	if ts.IsZero() {
		return "-"
	}
	ts = ts.UTC()
	if y, m, d := ts.Date(); y == fixtureDay.Year() && m == fixtureDay.Month() && d == fixtureDay.Day() {
		return ts.Format("15:04:05")
	}
	return ts.Format(time.RFC3339)
}

// outcome prints a transition's result and what it did to the user.
func outcome(eff approval.Effect, err error) string {
	out := "ok"
	if err != nil {
		out = "refused: " + err.Error()
	}
	if eff.Failure {
		out += " (counts as a failure)"
	}
	if eff.CancelOtherPending {
		out += " (cancel the user's other pending approvals)"
	}
	return out + "\n"
}

func (w *world) state() string {
	u := &w.user
	return fmt.Sprintf("user: failures=%d locked-until=%s token-required=%v last-totp-step=%d recent=%d\n",
		u.Failures, clock(u.LockedUntil), u.TokenRequired, u.LastTOTPStep, len(u.Recent))
}

// describe prints an approval as the fixtures show it, after checking that
// its record round-trips.
func (w *world) describe(a *approval.Approval) string {
	var back approval.Approval
	if err := approval.DecodeApproval(approval.AppendApproval(nil, a), &back); err != nil {
		panic(fmt.Sprintf("approval %s does not round-trip: %v", a.ID, err))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s %s user=%s created=%s expires=%s", a.ID, a.Status, a.Method, a.UserID,
		clock(a.CreatedAt), clock(a.ExpiresAt))
	if a.SourceIP.IsValid() {
		fmt.Fprintf(&b, " ip=%s", a.SourceIP)
	}
	fmt.Fprintf(&b, "\n  challenge=%s", a.ChallengeString())
	if a.NumberMatch {
		fmt.Fprintf(&b, " user-code=%s", a.UserCodeString())
	}
	b.WriteByte('\n')
	if len(a.Values) > 0 {
		b.WriteString("  values:")
		for _, v := range a.Values {
			fmt.Fprintf(&b, " %s=%s", shown(v.Key), shown(v.Value))
		}
		b.WriteByte('\n')
	}
	if !a.DecidedAt.IsZero() {
		fmt.Fprintf(&b, "  decided=%s", clock(a.DecidedAt))
		if a.DeviceID != "" {
			fmt.Fprintf(&b, " device=%s", a.DeviceID)
		}
		if a.RulesVersion != 0 {
			fmt.Fprintf(&b, " rules=v%d", a.RulesVersion)
		}
		b.WriteByte('\n')
	}
	if len(a.Factors) > 0 {
		b.WriteString("  factors:")
		for _, f := range a.Factors {
			fmt.Fprintf(&b, " %s=%s", f.Factor, f.Outcome)
		}
		b.WriteByte('\n')
	}
	if a.HasReceipt() {
		r := &a.Receipt
		fmt.Fprintf(&b, "  receipt: %s %s %s verifies=%v\n", r.Decision, r.Biometric, r.Timestamp,
			a.VerifyReceipt(w.device.Public().(ed25519.PublicKey)))
	}
	for _, t := range []struct {
		name string
		tok  *approval.OneTimeToken
	}{{"link", &a.LinkToken}, {"result token", &a.ResultToken}} {
		if t.tok.Issued() {
			fmt.Fprintf(&b, "  %s: until=%s used=%v\n", t.name, clock(t.tok.ExpiresAt), t.tok.Used)
		}
	}
	return b.String()
}

// shown is s as the fixtures print it: quoted when it has a control
// character, its length when it is long.
func shown(s string) string {
	switch {
	case len(s) > 40:
		return fmt.Sprintf("<%d bytes>", len(s))
	case strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 }):
		return strconv.Quote(s)
	}
	return s
}

func base32NoPad(b []byte) string {
	return strings.TrimRight(base32.StdEncoding.EncodeToString(b), "=")
}
