package native

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"net/netip"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/countersign/countersign/engine/approval"
	"github.com/countersign/countersign/server/httpd"
	"github.com/countersign/countersign/server/jsonwire"
	"github.com/countersign/countersign/store"
)

// The approvals' catalog entries (DESIGN "Native approvals", "States and
// limits"). A locked user is 423, not 403: the refusal is temporary and
// Retry-After says when it ends, which is what 423 means. 403 is the OTP a
// user who denied must enter under otpAfterDenial, which no waiting lifts.
var (
	errOTPWrong      = httpd.Register(401, "otp_invalid", "The OTP code is wrong, or was already used; each code is accepted once.")
	errOTPRequired   = httpd.Register(403, "otp_required", "The user denied an approval; until an OTP code is accepted, the user's approvals must be of method otp.")
	errNoOTPSeed     = httpd.Register(409, "otp_seed_missing", "The user has no TOTP seed stored, so no OTP code can be checked.")
	errApprovalLimit = httpd.Register(429, "approval_limit", "The user has as many approvals as allowed; retry after the Retry-After seconds.")
)

// Limits of the approval routes.
const (
	// limitApprovalBody holds the largest request the engine takes
	// (approval.MaxValues values of the longest key and value, escaped).
	limitApprovalBody = 96 << 10
	// maxApprovalHold is the longest GET /v1/approvals/{id}?wait= holds;
	// DESIGN's clients ask for 25 s.
	maxApprovalHold = 30 * time.Second
	// pollInterval is the "interval" of a created approval: how often a
	// requester that does not long poll should ask.
	pollInterval = 2
	// approvalIDLen is the length of the store's ids (apr_ and 24 base32
	// characters); anything else is answered 404 unread.
	approvalIDLen = len(store.ApprovalIDPrefix) + 24
)

type approvalValue struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

type createApprovalRequest struct {
	UserID      string          `json:"userID"`
	Message     string          `json:"message"`
	Values      []approvalValue `json:"values"`
	Method      string          `json:"method"`
	ExpiresIn   int64           `json:"expiresIn"`
	NumberMatch bool            `json:"numberMatch"`
	IP          string          `json:"ip"`
}

func (r *createApprovalRequest) reset() {
	values := r.Values[:cap(r.Values)]
	clear(values)
	*r = createApprovalRequest{Values: values[:0]}
}

type otpRequest struct {
	Code string `json:"code"`
}

var (
	shapeApprovalValue = &jsonwire.Shape{Kind: jsonwire.KindObject, Desc: "an object", Fields: []jsonwire.FieldShape{
		{Name: "key", Shape: jsonwire.ShapeString, Required: true},
		{Name: "value", Shape: jsonwire.ShapeString, Required: true},
	}}
	shapeCreateApproval = &jsonwire.Shape{Kind: jsonwire.KindObject, Desc: "an object", Fields: []jsonwire.FieldShape{
		{Name: "userID", Shape: jsonwire.ShapeString, Required: true},
		{Name: "message", Shape: jsonwire.ShapeString, Required: true},
		{Name: "values", Shape: &jsonwire.Shape{Kind: jsonwire.KindArray, Nullable: true, Elem: shapeApprovalValue,
			MaxItems: approval.MaxValues, Desc: "an array of {key, value} strings"}},
		{Name: "method", Shape: jsonwire.ShapeString, Required: true},
		{Name: "expiresIn", Shape: &jsonwire.Shape{Kind: jsonwire.KindInt, PosMax: approval.MaxExpirySeconds,
			Desc: "an integer number of seconds"}},
		{Name: "numberMatch", Shape: jsonwire.ShapeBool},
		{Name: "ip", Shape: jsonwire.ShapeString},
	}}
	shapeOTP = &jsonwire.Shape{Kind: jsonwire.KindObject, Desc: "an object", Fields: []jsonwire.FieldShape{
		{Name: "code", Shape: jsonwire.ShapeString, Required: true},
	}}
)

// createApproval answers POST /v1/approvals.
func (s *Surface) createApproval(c *reqCtx) {
	if _, ok := s.authAPIKey(c); !ok || !c.ReadBody(limitApprovalBody) {
		return
	}
	r := &c.approvalReq
	r.reset()
	if !c.Decode(shapeCreateApproval, r) {
		return
	}
	method, err := approval.ParseMethod(r.Method)
	if err != nil || method == approval.MethodEmail {
		c.Failf(httpd.ErrInvalidField, msgMethod)
		return
	}
	if r.ExpiresIn != 0 && r.ExpiresIn < approval.MinExpirySeconds {
		c.Failf(httpd.ErrInvalidField, msgExpiresIn)
		return
	}
	ip, ok := c.sourceIP(r.IP)
	if !ok {
		return
	}
	if !validID(r.UserID) {
		c.Failf(httpd.ErrInvalidField, msgUserID)
		return
	}
	id, err := s.db.NewApprovalID()
	if err != nil {
		c.StoreFailed(err)
		return
	}
	c.values = c.values[:0]
	for i := range r.Values {
		c.values = append(c.values, approval.Value{Key: r.Values[i].Key, Value: r.Values[i].Value})
	}
	conf, ok := c.OrgApprovals(s.orgs, c.org.ID)
	if !ok {
		return
	}
	cfg := &conf.Settings
	ar := approval.Request{
		ID: id, UserID: r.UserID, Message: r.Message, Values: c.values, Method: method, SourceIP: ip,
		Expiry: time.Duration(r.ExpiresIn) * time.Second, NumberMatch: r.NumberMatch,
	}
	now := s.now()
	a := &c.appr
	if err := approval.New(a, &ar, cfg, now, rand.Reader); err != nil {
		if errors.Is(err, approval.ErrRandom) {
			s.log.Error("approval randomness", "err", err)
			c.Fail(httpd.ErrInternal, nil)
			return
		}
		c.Failf(httpd.ErrInvalidField, engineMessage(err))
		return
	}
	var retryAt time.Time
	err = s.db.CreateApproval(c.org.ID, a, func(u *approval.UserState, adm *approval.Admission) error {
		adm.Method = method
		adm.HonourTokenRequired = cfg.OTPAfterDenial
		var aerr error
		retryAt, aerr = approval.Admit(u, cfg, adm, now)
		return aerr
	})
	if err != nil {
		c.admissionFailed(err, retryAt, now)
		return
	}
	org := c.org.ID.String()
	s.core.Hub().Publish(httpd.TopicKey(httpd.TopicUserApprovals, org, a.UserID))

	c.Status = fasthttp.StatusCreated
	c.Out = append(c.Out[:0], `{"approvalID":`...)
	c.Out = jsonwire.AppendString(c.Out, a.ID)
	c.Out = append(c.Out, `,"status":"pending","expiresAt":`...)
	c.Out = strconv.AppendInt(c.Out, a.ExpiresAt.UnixMilli(), 10)
	c.Out = append(c.Out, `,"interval":`...)
	c.Out = strconv.AppendInt(c.Out, pollInterval, 10)
	if a.NumberMatch {
		c.Out = append(c.Out, `,"userCode":"`...)
		c.Out = append(c.Out, a.UserCode[:]...)
		c.Out = append(c.Out, '"')
	}
	c.Out = append(c.Out, '}')
}

const (
	msgMethod    = `method must be "push" or "otp"`
	msgExpiresIn = "expiresIn, when given, must be 10 to 3600 seconds"
	msgIP        = "ip, when given, must be an IPv4 or IPv6 address without zone"
	msgCode      = "code must be the 6 digits of the user's authenticator"
)

// sourceIP is the approval's source IP: the request's "ip", else the
// caller's address (DESIGN "Rules": the IP factor is applied to it).
func (c *reqCtx) sourceIP(s string) (netip.Addr, bool) {
	if s == "" {
		ip, _ := netip.AddrFromSlice(c.RC.RemoteIP())
		return ip.Unmap(), true
	}
	ip, err := netip.ParseAddr(s)
	if err != nil || ip.Zone() != "" {
		return netip.Addr{}, c.Failf(httpd.ErrInvalidField, msgIP)
	}
	return ip.Unmap(), true
}

// admissionFailed answers CreateApproval's refusal: the store's, or
// Admit's with Retry-After until retryAt.
func (c *reqCtx) admissionFailed(err error, retryAt, now time.Time) {
	switch {
	case errors.Is(err, store.ErrNotFound):
		c.Fail(httpd.ErrUserNotFound, nil)
		return
	case errors.Is(err, approval.ErrLocked):
		c.Fail(httpd.ErrUserLocked, nil)
	case errors.Is(err, approval.ErrTooManyPending):
		c.Fail(errApprovalLimit, msgTooManyPending)
	case errors.Is(err, approval.ErrRateLimited):
		c.Fail(errApprovalLimit, msgRateLimited)
	case errors.Is(err, approval.ErrTokenRequired):
		// otpAfterDenial: no waiting lifts it, so no Retry-After.
		c.Fail(errOTPRequired, nil)
		return
	default:
		c.StoreFailed(err)
		return
	}
	c.RetryAt(retryAt, now)
}

var (
	msgTooManyPending = []byte("The user has as many pending approvals as allowed; retry when one is decided or expires, after the Retry-After seconds.")
	msgRateLimited    = []byte("The user was sent as many approvals as allowed in the last minutes; retry after the Retry-After seconds.")
)

// validApprovalID reports whether id can be a store approval id (apr_ and
// lowercase base32); anything
// else is answered 404 unread, as a missing one.
func validApprovalID(id []byte) bool {
	if len(id) != approvalIDLen || string(id[:len(store.ApprovalIDPrefix)]) != store.ApprovalIDPrefix {
		return false
	}
	for _, ch := range id[len(store.ApprovalIDPrefix):] {
		if !(ch >= 'a' && ch <= 'z' || ch >= '2' && ch <= '7') {
			return false
		}
	}
	return true
}

// approvalStatus answers GET /v1/approvals/{id}?wait=: at once when the
// approval is decided or no wait is asked, else when it is decided, the
// wait ends or the server shuts down, whichever comes first.
func (s *Surface) approvalStatus(c *reqCtx, idParam []byte) {
	if _, ok := s.authAPIKey(c); !ok {
		return
	}
	// The hold runs on the wall clock (the hub's timers), whatever clock
	// the statuses are read with.
	deadline, ok := c.WaitParam(time.Now())
	if !ok {
		return
	}
	if !validApprovalID(idParam) {
		c.Fail(httpd.ErrApprovalNotFound, nil)
		return
	}
	id := jsonwire.BytesToString(idParam)
	var w *httpd.Waiter
	if time.Until(deadline) > 0 {
		// Subscribed before the first read, so a decision between the read
		// and the wait wakes it (httpd.Hub).
		if w, ok = c.Hold(httpd.TopicKey(httpd.TopicApproval, c.org.ID.String(), id)); !ok {
			return
		}
		defer w.Close()
	}
	for {
		if !s.readApproval(c, id) {
			return
		}
		if c.appr.StatusAt(s.now()) != approval.StatusPending || w == nil || w.Wait(deadline) != httpd.WakePublished {
			break
		}
	}
	c.Status = fasthttp.StatusOK
	c.Out = appendApproval(c.Out[:0], &c.appr, s.now())
}

// readApproval reads the organization's approval id into c.appr, answering
// 404 when it has none (another organization's included) and ok false.
func (s *Surface) readApproval(c *reqCtx, id string) bool {
	if err := s.db.Approval(c.org.ID, id, &c.appr); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return c.Fail(httpd.ErrApprovalNotFound, nil)
		}
		return c.StoreFailed(err)
	}
	return true
}

// appendApproval appends the requester's view of a at now:
// {"approvalID","status","factors","decidedAt","deviceID","receipt"?}.
// decidedAt is Unix milliseconds, null while pending; deviceID is "" unless
// a device answered.
func appendApproval(dst []byte, a *approval.Approval, now time.Time) []byte {
	st := a.StatusAt(now)
	dst = append(dst, `{"approvalID":`...)
	dst = jsonwire.AppendString(dst, a.ID)
	dst = append(dst, `,"status":"`...)
	dst = append(dst, st.String()...)
	dst = append(dst, `","factors":`...)
	dst = a.AppendFactorsJSON(dst)
	dst = append(dst, `,"decidedAt":`...)
	dst = jsonwire.AppendDecidedAt(dst, a, now)
	dst = append(dst, `,"deviceID":`...)
	dst = jsonwire.AppendString(dst, a.DeviceID)
	if a.HasReceipt() {
		r := &a.Receipt
		dst = append(dst, `,"receipt":{"decision":"`...)
		dst = append(dst, r.Decision.String()...)
		dst = append(dst, `","biometric":"`...)
		dst = append(dst, r.Biometric.String()...)
		dst = append(dst, `","timestamp":`...)
		dst = jsonwire.AppendString(dst, r.Timestamp)
		dst = append(dst, `,"signature":"`...)
		dst = base64.RawURLEncoding.AppendEncode(dst, r.Signature[:])
		dst = append(dst, `"}`...)
	}
	return append(dst, '}')
}

// cancelApproval answers POST /v1/approvals/{id}/cancel with the cancelled
// approval.
func (s *Surface) cancelApproval(c *reqCtx, idParam []byte) {
	if _, ok := s.authAPIKey(c); !ok {
		return
	}
	if !validApprovalID(idParam) {
		c.Fail(httpd.ErrApprovalNotFound, nil)
		return
	}
	id := jsonwire.BytesToString(idParam)
	now := s.now()
	_, err := s.db.UpdateApproval(c.org.ID, id, &c.appr, &c.ustate,
		func(a *approval.Approval, _ *approval.UserState) (approval.Effect, error) {
			return approval.Effect{Status: a.Status}, a.Cancel(now)
		})
	if err != nil {
		s.transitionFailed(c, id, err)
		return
	}
	s.published(c, id)
	c.Status = fasthttp.StatusOK
	c.Out = appendApproval(c.Out[:0], &c.appr, now)
}

// published wakes whoever waits on the approval id and on its user's
// pending approvals: it was decided or cancelled.
func (s *Surface) published(c *reqCtx, id string) {
	org := c.org.ID.String()
	hub := s.core.Hub()
	hub.Publish(httpd.TopicKey(httpd.TopicApproval, org, id))
	hub.Publish(httpd.TopicKey(httpd.TopicUserApprovals, org, c.appr.UserID))
}

// transitionFailed answers a refused transition of the approval id. A
// refusal that marked it expired on the way was stored, so its waiters
// are woken too.
func (s *Surface) transitionFailed(c *reqCtx, id string, err error) {
	switch {
	case errors.Is(err, store.ErrNotFound):
		c.Fail(httpd.ErrApprovalNotFound, nil)
	case errors.Is(err, approval.ErrNotPending):
		if errors.Is(err, approval.ErrExpired) {
			s.published(c, id)
		}
		c.Failf(httpd.ErrApprovalNotPending, "The approval is no longer pending: it is ", c.appr.Status.String(), ".")
	case errors.Is(err, approval.ErrWrongMethod):
		c.Failf(httpd.ErrApprovalWrongMethod, "The approval's method is ", c.appr.Method.String(), ", which does not take this answer.")
	default:
		c.StoreFailed(err)
	}
}

// approvalOTP answers POST /v1/approvals/{id}/otp {"code"}: the user's TOTP
// code approves an OTP approval (approval.DecideOTP).
func (s *Surface) approvalOTP(c *reqCtx, idParam []byte) {
	if _, ok := s.authAPIKey(c); !ok || !c.ReadBody(httpd.LimitSmall) {
		return
	}
	r := &c.otpReq
	*r = otpRequest{}
	if !c.Decode(shapeOTP, r) {
		return
	}
	if !validOTPCode(r.Code) {
		c.Failf(httpd.ErrInvalidField, msgCode)
		return
	}
	if !validApprovalID(idParam) {
		c.Fail(httpd.ErrApprovalNotFound, nil)
		return
	}
	id := jsonwire.BytesToString(idParam)
	if !s.readApproval(c, id) {
		return
	}
	a := &c.appr
	if a.Method != approval.MethodOTP {
		s.transitionFailed(c, id, approval.ErrWrongMethod)
		return
	}
	if st := a.StatusAt(s.now()); st != approval.StatusPending {
		c.Failf(httpd.ErrApprovalNotPending, "The approval is no longer pending: it is ", st.String(), ".")
		return
	}
	seed, err := s.db.TOTPSeed(c.org.ID, a.UserID, c.seed[:0])
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrNoSealer) {
		c.Failf(errNoOTPSeed, "The user ", a.UserID, " has no TOTP seed stored (no device was activated), so no OTP code can be checked.")
		return
	}
	if err != nil {
		c.StoreFailed(err)
		return
	}
	c.seed = seed
	conf, ok := c.OrgApprovals(s.orgs, c.org.ID)
	if !ok {
		return
	}
	cfg := &conf.Settings
	now := s.now()
	_, err = s.db.UpdateApproval(c.org.ID, id, a, &c.ustate,
		func(a *approval.Approval, u *approval.UserState) (approval.Effect, error) {
			return approval.DecideOTP(a, u, cfg, seed, r.Code, now)
		})
	clear(c.seed)
	switch {
	case err == nil:
		s.published(c, id)
		c.Status = fasthttp.StatusOK
		c.Out = appendApproval(c.Out[:0], &c.appr, now)
	case errors.Is(err, approval.ErrOTPWrong), errors.Is(err, approval.ErrOTPReplayed):
		c.Fail(errOTPWrong, nil)
	case errors.Is(err, approval.ErrLocked):
		c.Fail(httpd.ErrUserLocked, nil)
		c.RetryAt(c.ustate.LockedUntil, now)
	default:
		s.transitionFailed(c, id, err)
	}
}

// validOTPCode reports whether code is six ASCII digits (RFC 6238's codes,
// as the authenticator shows them).
func validOTPCode(code string) bool {
	if len(code) != 6 {
		return false
	}
	for i := 0; i < len(code); i++ {
		if code[i] < '0' || code[i] > '9' {
			return false
		}
	}
	return true
}
