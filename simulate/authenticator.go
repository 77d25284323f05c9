package simulate

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/countersign/countersign/client"
)

// The authenticator-app simulator: an operator registers a user and makes
// an activation code, the app activates with a fresh Ed25519 key, a
// backend asks for an approval and long-polls its outcome, the app
// long-polls its pending approvals and answers one, signed; each scenario
// then checks what the backend's long poll was answered.

// Where the simulated user is: the fence the rules scenarios put around
// Amsterdam's centre, a point inside it and one 3.6 km north of it.
const (
	fenceLat, fenceLon = 52.3676, 4.9041
	fenceRadiusM       = 1000
	outsideLat         = 52.4000
	// AppVersion is what the simulated app reports; the rules require at
	// least minAppVersion.
	AppVersion    = "3.2.0"
	minAppVersion = "2.1.0"
	// answerWait is the long polls' wait, as DESIGN's apps ask.
	answerWait = 25
	// expirySeconds is the expiry scenario's: the shortest the server takes.
	expirySeconds = 10
)

// The rule set's ids.
const (
	fenceID      = "sim-fence"
	openWindow   = "sim-open"
	closedWindow = "sim-closed"
)

// AuthScenario is one thing the authenticator's user can do, and what the
// requester's long poll must be answered.
type AuthScenario struct {
	Name  string
	About string
	// Rules: the scenario is about a rule factor, so it needs the
	// organization's rules (PUT /admin/v1/rules), and which fences and
	// windows its user gets.
	Rules                 bool
	GeoFences, TimeWindow []string
	// Request adjusts the approval the backend asks for.
	Request func(r *client.ApprovalRequest)
	// Answer adjusts the app's answer before it is signed; Tamper after.
	Answer func(ans *client.DeviceAnswer, created *client.CreatedApproval)
	Tamper func(ans *client.DeviceAnswer, p *client.PendingApproval, key ed25519.PrivateKey)
	// Late makes the app answer after the approval expired.
	Late bool
	// Expect says what is wrong with the outcome, or nil.
	Expect func(o *AuthOutcome) error
}

// AuthOutcome is what one authenticator scenario produced.
type AuthOutcome struct {
	Scenario string
	User     string
	// Delivery is from the create's 201 (the approval stored) to the
	// app's long poll answering it; 0 when the poll answered first.
	Delivery time.Duration
	// DeviceResult is the server's answer to the app's answer, or
	// DeviceErr its refusal.
	DeviceResult *client.AnswerResult
	DeviceErr    error
	// Final is what the requester's long poll was answered.
	Final *client.ApprovalStatus
	// Skipped says why the scenario was not played ("" when it was).
	Skipped string
	// Err is a failed request or an outcome other than the expected one.
	Err     error
	Elapsed time.Duration
}

// AuthScenarios are every scenario the authenticator plays.
var AuthScenarios = []*AuthScenario{
	{
		Name:  "approve",
		About: "the user approves inside the fence during the window, biometric PASS",
		// Not Rules: without them the approval is approved all the same,
		// its rule factors SKIPPED.
		GeoFences: []string{fenceID}, TimeWindow: []string{openWindow},
		Expect: func(o *AuthOutcome) error {
			var c checks
			c.status(o, "approved")
			c.factor(o, "biometric", "PASS", "")
			c.rulesFactors(o, "PASS")
			c.want(o.Final != nil && o.Final.Receipt != nil && o.Final.Receipt.Decision == "approve", "a receipt of the approve")
			return c.err()
		},
	},
	{
		Name:  "deny",
		About: "the user denies",
		Answer: func(ans *client.DeviceAnswer, _ *client.CreatedApproval) {
			ans.Decision = "deny"
		},
		Expect: func(o *AuthOutcome) error {
			var c checks
			c.status(o, "denied")
			return c.err()
		},
	},
	{
		Name:  "biometric_fail",
		About: "the user approves but the phone's biometric check fails",
		Answer: func(ans *client.DeviceAnswer, _ *client.CreatedApproval) {
			ans.Biometric = "FAIL"
		},
		Expect: func(o *AuthOutcome) error {
			var c checks
			c.status(o, "failed")
			c.factor(o, "biometric", "FAIL", "")
			return c.err()
		},
	},
	{
		Name:  "outside_geofence",
		About: "the user approves 3.6 km outside the fence",
		Rules: true, GeoFences: []string{fenceID}, TimeWindow: []string{openWindow},
		Answer: func(ans *client.DeviceAnswer, _ *client.CreatedApproval) {
			ans.Location.Lat = outsideLat
		},
		Expect: func(o *AuthOutcome) error {
			var c checks
			c.status(o, "failed")
			c.factor(o, "geo_fence", "FAIL", "geofencing")
			return c.err()
		},
	},
	{
		Name:  "outside_time_window",
		About: "the user approves outside the only window the user has",
		Rules: true, TimeWindow: []string{closedWindow},
		Expect: func(o *AuthOutcome) error {
			var c checks
			c.status(o, "failed")
			c.factor(o, "time_window", "FAIL", "timezone")
			return c.err()
		},
	},
	{
		Name:  "bad_signature",
		About: "an answer signed over altered values is refused and the approval stays pending",
		Tamper: func(ans *client.DeviceAnswer, p *client.PendingApproval, key ed25519.PrivateKey) {
			altered := *p
			altered.Values = append([]client.Value(nil), p.Values...)
			altered.Values[0].Value = "3500.00"
			ans.Sign(key, &altered)
		},
		Expect: func(o *AuthOutcome) error {
			var c checks
			c.refused(o, 422, "answer_bad_signature")
			c.status(o, "pending")
			return c.err()
		},
	},
	{
		Name:    "expired",
		About:   "the app answers after the approval's 10 s expiry",
		Request: func(r *client.ApprovalRequest) { r.ExpiresIn = expirySeconds },
		Late:    true,
		Expect: func(o *AuthOutcome) error {
			var c checks
			c.refused(o, 410, "answer_late")
			c.status(o, "expired")
			return c.err()
		},
	},
	{
		Name:    "number_match",
		About:   "the requester shows a two-digit number and the user picks it on the phone",
		Request: func(r *client.ApprovalRequest) { r.NumberMatch = true },
		Answer: func(ans *client.DeviceAnswer, created *client.CreatedApproval) {
			ans.Number = created.UserCode
		},
		Expect: func(o *AuthOutcome) error {
			var c checks
			c.status(o, "approved")
			c.factor(o, "number_match", "PASS", "")
			return c.err()
		},
	},
}

// AuthScenarioNames lists the authenticator scenarios in play order.
func AuthScenarioNames() []string { return names(AuthScenarios, authName) }

// AuthScenarioByName returns the named scenario ("-" and "_" are the same).
func AuthScenarioByName(name string) (*AuthScenario, bool) {
	return byName(AuthScenarios, authName, name)
}

func authName(s *AuthScenario) string { return s.Name }

// Authenticator plays the operator, the backend and the authenticator app
// of one organization, through one client holding the admin key and the
// API key. Not safe for concurrent use.
type Authenticator struct {
	Client *client.Client
	// RunID prefixes the user ids, so runs against the same data never
	// collide.
	RunID string
	// Now is the device clock; nil means time.Now.
	Now func() time.Time

	// rulesServed is whether PUT /admin/v1/rules was taken, once tried.
	rulesServed, rulesTried bool
}

// NewAuthenticator returns an authenticator that speaks through c.
func NewAuthenticator(c *client.Client, runID string) *Authenticator {
	if runID == "" {
		runID = "auth" + strconv.FormatInt(time.Now().UnixNano(), 36)
	}
	return &Authenticator{Client: c, RunID: runID}
}

func (a *Authenticator) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

// User is the id of the scenario's user: each scenario has its own, so
// that one's failures never lock another's user.
func (a *Authenticator) User(sc *AuthScenario) string {
	return a.RunID + "-" + strings.ReplaceAll(sc.Name, "_", "-")
}

// rulesNotServed is why a rules scenario is skipped against a server
// without PUT /admin/v1/rules.
const rulesNotServed = "rules not served"

// Rules is the rule set the scenarios need: one fence, a window open now
// and one closed now (in UTC, every day), each assigned to the users of
// the scenarios about them, so no other user of the organization is held
// to them; device trust every real app passes; and a deny list of the
// documentation range, which no caller is in.
func (a *Authenticator) Rules(scenarios []*AuthScenario) *client.Rules {
	now := a.now().UTC()
	hm := func(d time.Duration) string { return now.Add(d).Format("15:04") }
	days := []string{"mon", "tue", "wed", "thu", "fri", "sat", "sun"}
	r := &client.Rules{
		GeoFences: []client.GeoFence{{ID: fenceID, Name: "Amsterdam centre", Lat: fenceLat, Lon: fenceLon, RadiusMeters: fenceRadiusM}},
		TimeWindows: []client.TimeWindow{
			{ID: openWindow, Zone: "UTC", Days: days, Start: hm(-time.Hour), End: hm(time.Hour)},
			{ID: closedWindow, Zone: "UTC", Days: days, Start: hm(2 * time.Hour), End: hm(3 * time.Hour)},
		},
		IPDeny: []string{"192.0.2.0/24"},
		Device: &client.DeviceRules{RequireRegistered: true, Platforms: []string{"ios", "android"},
			MinAppVersion: minAppVersion, BlockJailbroken: true},
		Users: map[string]client.UserRules{},
	}
	for _, sc := range scenarios {
		if len(sc.GeoFences) > 0 || len(sc.TimeWindow) > 0 {
			r.Users[a.User(sc)] = client.UserRules{GeoFences: nonNil(sc.GeoFences), TimeWindows: nonNil(sc.TimeWindow)}
		}
	}
	return r
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// PrepareRules puts the scenarios' rule set, once: it replaces the
// organization's. A server that does not serve the route is remembered,
// and the scenarios about rules are then skipped.
func (a *Authenticator) PrepareRules(scenarios []*AuthScenario) error {
	if a.rulesTried {
		return nil
	}
	a.rulesTried = true
	_, err := a.Client.PutRules(a.Rules(scenarios))
	var ae *client.APIError
	switch {
	case errors.As(err, &ae) && ae.Code == "route_not_found":
		return nil
	case err != nil:
		return fmt.Errorf("PUT /admin/v1/rules: %w", err)
	}
	a.rulesServed = true
	return nil
}

// RulesServed reports whether the server took the scenarios' rule set.
func (a *Authenticator) RulesServed() bool { return a.rulesServed }

// RunAll prepares the rules and plays every scenario once.
func (a *Authenticator) RunAll(ctx context.Context, scenarios []*AuthScenario) ([]AuthOutcome, error) {
	if err := a.PrepareRules(scenarios); err != nil {
		return nil, err
	}
	var outs []AuthOutcome
	for _, sc := range scenarios {
		if ctx.Err() != nil {
			break
		}
		outs = append(outs, a.Run(ctx, sc))
	}
	return outs, ctx.Err()
}

// Run plays one scenario with its own user: register it, activate a
// device, ask for an approval, answer it from the device, and check what
// the requester's long poll is answered.
func (a *Authenticator) Run(ctx context.Context, sc *AuthScenario) AuthOutcome {
	start := time.Now()
	out := AuthOutcome{Scenario: sc.Name, User: a.User(sc)}
	if sc.Rules && !a.rulesServed {
		out.Skipped = rulesNotServed
		return out
	}
	out.Err = a.play(ctx, sc, &out)
	out.Elapsed = time.Since(start)
	if out.Err == nil {
		out.Err = sc.Expect(&out)
	}
	return out
}

// Enrolled is an activated device and its key.
type Enrolled struct {
	Device *client.Device
	Key    ed25519.PrivateKey
}

// Enroll registers the user, makes an activation code and activates a
// device with a new Ed25519 key, as the app does at first start.
func Enroll(c *client.Client, userID string) (*Enrolled, error) {
	return EnrollUser(c, &client.NewUser{UserID: userID, Name: "Simulated " + userID})
}

// EnrollUser is Enroll of a user registered as u: with the mobile number or
// e-mail address by which the compatible surfaces find a user.
func EnrollUser(c *client.Client, u *client.NewUser) (*Enrolled, error) {
	userID := u.UserID
	if _, err := c.CreateUser(u); err != nil {
		return nil, err
	}
	code, err := c.CreateActivationCode(userID)
	if err != nil {
		return nil, err
	}
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	d, err := c.ActivateDevice(code.ActivationCode, &client.Activation{
		PublicKey: pub, Platform: "ios", AppVersion: AppVersion, Model: "iPhone15,2",
	})
	if err != nil {
		return nil, err
	}
	return &Enrolled{Device: d, Key: key}, nil
}

// NewAnswer is the app's answer to p as the user gives it at now: approve,
// biometric PASS by face, inside the fence, signed with key.
func NewAnswer(key ed25519.PrivateKey, p *client.PendingApproval, now time.Time) *client.DeviceAnswer {
	ans := &client.DeviceAnswer{
		Decision: "approve", Biometric: "PASS", BiometricMethod: "face",
		Location: &client.Location{Lat: fenceLat, Lon: fenceLon, AccuracyM: 12},
		Platform: "ios", AppVersion: AppVersion,
		Timestamp: now.UTC().Format(time.RFC3339),
	}
	ans.Sign(key, p)
	return ans
}

func (a *Authenticator) play(ctx context.Context, sc *AuthScenario, out *AuthOutcome) error {
	c := a.Client
	e, err := Enroll(c, out.User)
	if err != nil {
		return err
	}
	req := &client.ApprovalRequest{UserID: out.User, Message: "Approve the transfer of EUR 35.00 to payee 6?",
		Values: []client.Value{{Key: "amount", Value: "35.00"}, {Key: "payee", Value: "6"}}, Method: "push"}
	if sc.Request != nil {
		sc.Request(req)
	}
	// The app is already waiting, as a real one is, so that delivery is
	// measured from creation to the long poll's answer.
	type polled struct {
		list []client.PendingApproval
		at   time.Time
		err  error
	}
	pc := make(chan polled, 1)
	go func() {
		list, err := c.DeviceApprovals(e.Device.DeviceToken, answerWait)
		pc <- polled{list, time.Now(), err}
	}()
	time.Sleep(50 * time.Millisecond) // let the poll be held before the approval exists
	created, err := c.CreateApproval(req)
	createdAt := time.Now()
	if err != nil {
		return err
	}
	type final struct {
		st  *client.ApprovalStatus
		err error
	}
	fc := make(chan final, 1)
	go func() {
		st, err := c.Approval(created.ApprovalID, answerWait)
		fc <- final{st, err}
	}()
	var p *client.PendingApproval
	select {
	case r := <-pc:
		if r.err != nil {
			return fmt.Errorf("device long poll: %w", r.err)
		}
		// From the create's 201 (the approval stored): the poll may even
		// be answered first, which counts as 0.
		out.Delivery = max(r.at.Sub(createdAt), 0)
		for i := range r.list {
			if r.list[i].ApprovalID == created.ApprovalID {
				p = &r.list[i]
			}
		}
	case <-ctx.Done():
		return ctx.Err()
	}
	if p == nil {
		return fmt.Errorf("the device's long poll did not deliver approval %s", created.ApprovalID)
	}
	if sc.Late {
		wait := time.Until(time.UnixMilli(p.ExpiresAt)) + 500*time.Millisecond
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	ans := NewAnswer(e.Key, p, a.now())
	if sc.Answer != nil {
		sc.Answer(ans, created)
		ans.Sign(e.Key, p)
	}
	if sc.Tamper != nil {
		sc.Tamper(ans, p, e.Key)
	}
	out.DeviceResult, out.DeviceErr = c.AnswerApproval(e.Device.DeviceToken, p.ApprovalID, ans)
	if out.DeviceErr != nil {
		var ae *client.APIError
		if !errors.As(out.DeviceErr, &ae) {
			return out.DeviceErr
		}
	}
	if out.DeviceErr != nil && !sc.Late {
		// A refused answer leaves the approval pending: the requester's
		// poll is then read at once, and the approval cancelled so the
		// user's pending count is left as it was.
		st, err := c.Approval(created.ApprovalID, 0)
		if err != nil {
			return err
		}
		out.Final = st
		if _, err := c.CancelApproval(created.ApprovalID); err != nil {
			return fmt.Errorf("cancel: %w", err)
		}
		<-fc
		return nil
	}
	select {
	case f := <-fc:
		out.Final = f.st
		return f.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (c *checks) status(o *AuthOutcome, want string) {
	c.want(o.Final != nil && o.Final.Status == want, "the requester's long poll answered "+want)
}

// factor wants the named factor with the result, its reason containing
// reason.
func (c *checks) factor(o *AuthOutcome, name, result, reason string) {
	what := name + " " + result
	if reason != "" {
		what += " naming " + strconv.Quote(reason)
	}
	if o.Final == nil {
		c.want(false, what)
		return
	}
	f, ok := o.Final.Factor(name)
	c.want(ok && f.Result == result && strings.Contains(f.Reason, reason), what)
}

// rulesFactors wants every rule factor present, each result or SKIPPED
// (the organization's rules may leave one unconfigured).
func (c *checks) rulesFactors(o *AuthOutcome, result string) {
	for _, name := range [...]string{"geo_fence", "time_window", "ip", "device"} {
		var f client.Factor
		ok := false
		if o.Final != nil {
			f, ok = o.Final.Factor(name)
		}
		c.want(ok && (f.Result == result || f.Result == "SKIPPED"), name+" "+result+" or SKIPPED")
	}
}

func (c *checks) refused(o *AuthOutcome, status int, code string) {
	var ae *client.APIError
	c.want(errors.As(o.DeviceErr, &ae) && ae.Status == status && ae.Code == code,
		"the device's answer refused "+strconv.Itoa(status)+" "+code)
}

// WriteAuthTable prints one row per outcome: the requester's final status,
// the failing factors, the device answer's refusal, the delivery latency,
// and whether it is what the scenario expects.
func WriteAuthTable(w io.Writer, outs []AuthOutcome) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SCENARIO\tUSER\tSTATUS\tFACTORS\tDEVICE\tDELIVERY\tMS\tRESULT")
	for _, o := range outs {
		status, factors, device, delivery := "-", "-", "-", "-"
		if o.Final != nil {
			status = o.Final.Status
			var fs []string
			for _, f := range o.Final.Factors {
				if f.Result != "SKIPPED" {
					fs = append(fs, f.Factor+"="+f.Result)
				}
			}
			if factors = strings.Join(fs, ","); factors == "" {
				factors = "none"
			}
		}
		var ae *client.APIError
		switch {
		case errors.As(o.DeviceErr, &ae):
			device = strconv.Itoa(ae.Status) + " " + ae.Code
		case o.DeviceResult != nil:
			device = "200 " + o.DeviceResult.Status
		}
		if o.Final != nil {
			delivery = o.Delivery.Round(10 * time.Microsecond).String()
		}
		result := "ok"
		switch {
		case o.Skipped != "":
			result = "skipped: " + o.Skipped
		case o.Err != nil:
			result = "FAIL: " + o.Err.Error()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", o.Scenario, o.User, status, factors, device, delivery, o.Elapsed.Milliseconds(), result)
	}
	return tw.Flush()
}
