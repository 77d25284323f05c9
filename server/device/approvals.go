package device

import (
	"encoding/base64"
	"errors"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/countersign/countersign/engine/approval"
	"github.com/countersign/countersign/engine/rules"
	"github.com/countersign/countersign/server/httpd"
	"github.com/countersign/countersign/server/jsonwire"
	"github.com/countersign/countersign/store"
)

// poll answers GET /v1/device/approvals?wait=N: the device's user's pending
// push approvals, oldest first, as soon as there is one, or an empty list
// once wait (at most MaxHold) has passed or the server shuts down.
//
// The request subscribes to the user's topic before it reads the store, as
// the hub requires: an approval created between the read and the wait has
// marked the waiter by then, so the wait returns at once and the next read
// finds it.
func (s *Surface) poll(c *reqCtx) {
	// The hold is real time, measured by the hub's timer: the wall clock,
	// not the service's clock that approvals are judged by.
	start := time.Now()
	deadline, ok := c.WaitParam(start)
	if !ok {
		return
	}
	org := c.dev.OrgID
	var w *httpd.Waiter
	if deadline.After(start) {
		if w, ok = c.Hold(httpd.TopicKey(httpd.TopicUserApprovals, org.String(), c.dev.UserID)); !ok {
			return
		}
		defer w.Close()
	}
	for {
		var err error
		c.pending, err = s.db.PendingApprovals(org, c.dev.UserID, c.pending)
		if err != nil {
			c.StoreFailed(err)
			return
		}
		c.pending = c.pending[:pushOnly(c.pending)]
		if len(c.pending) > 0 || w == nil {
			break
		}
		if w.Wait(deadline) != httpd.WakePublished {
			break // timed out, or shutting down: answer what there is, none
		}
	}
	c.Status = fasthttp.StatusOK
	c.Out = append(c.Out[:0], `{"approvals":[`...)
	for i := range c.pending {
		if i > 0 {
			c.Out = append(c.Out, ',')
		}
		c.Out = appendPending(c.Out, &c.pending[i])
	}
	c.Out = append(c.Out, `]}`...)
}

// pushOnly moves the push approvals of list to its front, in order, and
// returns how many: an OTP or e-mail approval is answered elsewhere, not by
// the device. The others are moved behind, not dropped, so their slices
// are reused by the next read.
func pushOnly(list []approval.Approval) int {
	n := 0
	for i := range list {
		if list[i].Method == approval.MethodPush {
			list[n], list[i] = list[i], list[n]
			n++
		}
	}
	return n
}

// appendPending appends one approval as the device shows it: everything
// the user sees and everything the device signs over (id, challenge,
// values in order). Times are Unix milliseconds, as on /admin/v1. The
// number under number matching is the requester's to show, not the
// device's: the user must pick it.
func appendPending(dst []byte, a *approval.Approval) []byte {
	dst = append(dst, `{"approvalID":`...)
	dst = jsonwire.AppendString(dst, a.ID)
	dst = append(dst, `,"message":`...)
	dst = jsonwire.AppendString(dst, a.Message)
	dst = append(dst, `,"values":`...)
	dst = jsonwire.AppendApprovalValues(dst, a.Values)
	dst = append(dst, `,"ip":"`...)
	if a.SourceIP.IsValid() {
		dst = a.SourceIP.AppendTo(dst)
	}
	dst = append(dst, `","createdAt":`...)
	dst = strconv.AppendInt(dst, a.CreatedAt.UnixMilli(), 10)
	dst = append(dst, `,"expiresAt":`...)
	dst = strconv.AppendInt(dst, a.ExpiresAt.UnixMilli(), 10)
	dst = append(dst, `,"challenge":"`...)
	dst = base64.RawURLEncoding.AppendEncode(dst, a.Challenge[:])
	dst = append(dst, `","numberMatch":`...)
	dst = jsonwire.AppendBool(dst, a.NumberMatch)
	return append(dst, '}')
}

// answerRequest is POST /v1/device/approvals/{id}'s body, DESIGN's answer.
// Strings refer into the request context's body.
type answerRequest struct {
	Decision  string         `json:"decision"`
	Biometric biometricField `json:"biometric"`
	Location  *locationField `json:"location"`
	Device    *deviceField   `json:"device"`
	Timestamp string         `json:"timestamp"`
	Number    string         `json:"number"`
	Signature string         `json:"signature"`
}

type biometricField struct {
	Result string `json:"result"`
	Method string `json:"method"`
}

type locationField struct {
	Lat       float64 `json:"lat"`
	Lon       float64 `json:"lon"`
	AccuracyM float64 `json:"accuracyM"`
}

type deviceField struct {
	Platform   string `json:"platform"`
	AppVersion string `json:"appVersion"`
	Jailbroken bool   `json:"jailbroken"`
}

var (
	shapeLat      = &jsonwire.Shape{Kind: jsonwire.KindNumber, Min: -90, Max: 90, Desc: "a latitude from -90 to 90"}
	shapeLon      = &jsonwire.Shape{Kind: jsonwire.KindNumber, Min: -180, Max: 180, Desc: "a longitude from -180 to 180"}
	shapeAccuracy = &jsonwire.Shape{Kind: jsonwire.KindNumber, Min: 0, Max: 1e7, Desc: "metres from 0 to 10000000"}

	shapeAnswer = &jsonwire.Shape{Kind: jsonwire.KindObject, Desc: "an object", Fields: []jsonwire.FieldShape{
		{Name: "decision", Shape: jsonwire.ShapeString, Required: true},
		{Name: "biometric", Required: true, Shape: &jsonwire.Shape{Kind: jsonwire.KindObject, Desc: "an object", Fields: []jsonwire.FieldShape{
			{Name: "result", Shape: jsonwire.ShapeString, Required: true},
			{Name: "method", Shape: jsonwire.ShapeString},
		}}},
		{Name: "location", Shape: &jsonwire.Shape{Kind: jsonwire.KindObject, Desc: "an object", Fields: []jsonwire.FieldShape{
			{Name: "lat", Shape: shapeLat, Required: true},
			{Name: "lon", Shape: shapeLon, Required: true},
			{Name: "accuracyM", Shape: shapeAccuracy},
		}}},
		{Name: "device", Shape: &jsonwire.Shape{Kind: jsonwire.KindObject, Desc: "an object", Fields: []jsonwire.FieldShape{
			{Name: "platform", Shape: jsonwire.ShapeString},
			{Name: "appVersion", Shape: jsonwire.ShapeString},
			{Name: "jailbroken", Shape: jsonwire.ShapeBool},
		}}},
		{Name: "timestamp", Shape: jsonwire.ShapeString, Required: true},
		{Name: "number", Shape: jsonwire.ShapeString},
		{Name: "signature", Shape: jsonwire.ShapeString, Required: true},
	}}
)

// answer answers POST /v1/device/approvals/{id}: approval.Answer applied
// under the store's compare-and-set (UpdateApproval), the rules decided
// for the organization, then the approval's and the user's topics
// published so the requester's held request and the device's long poll
// re-read. 200 {"approvalID","status","factors"} for an answer that
// verified, whatever it decided; a refusal is a 4xx naming its reason, and
// counts as one of the user's failures where the engine says so
// (approval.CountsAsFailure).
func (s *Surface) answer(c *reqCtx, id string) {
	if !c.ReadBody(httpd.LimitSmall) {
		return
	}
	r := &c.answerReq
	*r = answerRequest{}
	if !c.Decode(shapeAnswer, r) {
		return
	}
	var ans approval.DeviceAnswer
	var err error
	if ans.Decision, err = approval.ParseDecision(r.Decision); err != nil {
		c.Failf(httpd.ErrInvalidField, `decision must be "approve" or "deny"`)
		return
	}
	if ans.Biometric, err = approval.ParseBiometric(r.Biometric.Result); err != nil {
		c.Failf(httpd.ErrInvalidField, `biometric.result must be "PASS" or "FAIL"`)
		return
	}
	if m := r.Biometric.Method; m != "" && m != "face" && m != "fingerprint" {
		c.Failf(httpd.ErrInvalidField, `biometric.method must be "face" or "fingerprint"`)
		return
	}
	if d := r.Device; d != nil && (!field(d.Platform, 0, maxAppVersion) || !field(d.AppVersion, 0, maxAppVersion)) {
		c.Failf(httpd.ErrInvalidField, "device.platform and device.appVersion must be at most 32 printable ASCII characters")
		return
	}
	if len(r.Number) > 2 {
		c.Failf(httpd.ErrInvalidField, "number must be the two digits the user picked")
		return
	}
	ans.Timestamp, ans.Number, ans.Signature = r.Timestamp, r.Number, r.Signature
	if len(id) > approval.MaxIDLen {
		c.Fail(httpd.ErrApprovalNotFound, nil)
		return
	}
	org := c.dev.OrgID
	cfg, ok := c.OrgApprovals(s.orgs, org)
	if !ok {
		return
	}
	dev := c.dev.Approval()
	now := s.now()
	// Only the device's user's approvals are its to answer: another's is
	// ErrNotFound, answered as a missing one, and nothing is written.
	eff, err := s.db.UpdateApprovalOf(org, dev.UserID, id, &c.appr, &c.state,
		func(a *approval.Approval, u *approval.UserState) (approval.Effect, error) {
			c.rulesInput(a)
			rules.Evaluate(cfg.Rules, &c.in, now, &c.res)
			ans.Location = c.in.Location // kept on the approval for a circle read later
			return approval.Answer(a, u, &cfg.Settings, &dev, &ans, &c.res, now)
		})
	if errors.Is(err, store.ErrNotFound) {
		c.Fail(httpd.ErrApprovalNotFound, nil)
		return
	}
	if err == nil || errors.Is(err, approval.ErrLate) {
		// The approval left pending (decided, or marked expired by a late
		// answer): wake whoever holds a request on it or on the user's list.
		hub := s.core.Hub()
		hub.Publish(httpd.TopicKey(httpd.TopicApproval, org.String(), id))
		hub.Publish(httpd.TopicKey(httpd.TopicUserApprovals, org.String(), dev.UserID))
	}
	if err != nil {
		s.refused(c, err)
		return
	}
	c.Status = fasthttp.StatusOK
	c.Out = append(c.Out[:0], `{"approvalID":`...)
	c.Out = jsonwire.AppendString(c.Out, c.appr.ID)
	c.Out = append(c.Out, `,"status":"`...)
	c.Out = append(c.Out, eff.Status.String()...)
	c.Out = append(c.Out, `","factors":`...)
	c.Out = c.appr.AppendFactorsJSON(c.Out)
	c.Out = append(c.Out, '}')
}

// rulesInput fills c.in with the answer's evidence for a: the location the
// device sent, the approval's source IP, and the device as registered,
// with what the answer says of it now (an app updated since activation
// reports its new version). The byte views are of c.scratch.
func (c *reqCtx) rulesInput(a *approval.Approval) {
	r := &c.answerReq
	platform, version, jailbroken := c.dev.Platform, c.dev.AppVersion, c.dev.Jailbroken
	if d := r.Device; d != nil {
		if d.Platform != "" {
			platform = d.Platform
		}
		if d.AppVersion != "" {
			version = d.AppVersion
		}
		jailbroken = jailbroken || d.Jailbroken
	}
	c.scratch = append(c.scratch[:0], a.UserID...)
	c.scratch = append(c.scratch, platform...)
	c.scratch = append(c.scratch, version...)
	u, p := len(a.UserID), len(a.UserID)+len(platform)
	c.in = rules.Input{
		UserID:    c.scratch[:u:u],
		Biometric: mustBiometric(r.Biometric.Result),
		IP:        a.SourceIP,
		Device: rules.Device{Registered: true, Platform: c.scratch[u:p:p], AppVersion: c.scratch[p:],
			Jailbroken: jailbroken},
	}
	if l := r.Location; l != nil {
		c.in.Location = rules.Location{Present: true, Lat: l.Lat, Lon: l.Lon, AccuracyM: l.AccuracyM}
	}
}

// mustBiometric is the biometric result answer already parsed.
func mustBiometric(s string) rules.Biometric {
	b, _ := approval.ParseBiometric(s)
	return b
}

// refused answers an answer the engine refused, naming the reason.
func (s *Surface) refused(c *reqCtx, err error) {
	switch {
	case errors.Is(err, approval.ErrLocked):
		c.Fail(httpd.ErrUserLocked, nil)
		c.RetryAt(c.state.LockedUntil, s.now())
	case errors.Is(err, approval.ErrLate):
		c.Fail(errAnswerLate, nil)
	case errors.Is(err, approval.ErrNotPending):
		c.Fail(httpd.ErrApprovalNotPending, nil)
	case errors.Is(err, approval.ErrWrongMethod):
		c.Fail(httpd.ErrApprovalWrongMethod, nil)
	case errors.Is(err, approval.ErrSignature):
		c.Fail(errAnswerSignature, nil)
	case errors.Is(err, approval.ErrTimestamp), errors.Is(err, approval.ErrClockSkew):
		c.Fail(errAnswerTimestamp, nil)
	case errors.Is(err, approval.ErrDecision), errors.Is(err, approval.ErrBiometric):
		c.Failf(httpd.ErrInvalidField, err.Error())
	default:
		// A store failure, or a refusal that is the server's own mistake
		// (ErrRules, ErrPublicKey: the key was checked at activation).
		c.StoreFailed(err)
	}
}
