package ivalt

import (
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"net/netip"
	"strings"
	"time"

	"github.com/nyaruka/phonenumbers"
	"github.com/valyala/fasthttp"

	"github.com/countersign/countersign/engine/approval"
	"github.com/countersign/countersign/engine/rules"
	"github.com/countersign/countersign/server/httpd"
	"github.com/countersign/countersign/server/jsonwire"
	"github.com/countersign/countersign/store"
)

// The sentences of the refusals that name a field.
const (
	msgMobileMissing = "mobile (or mobile_number) is required: the user's mobile number, +CC then the number, or the national number with country_code"
	msgMobileTwice   = "give mobile or mobile_number, not both"
	msgEmailMissing  = "email is required"
	msgClientMissing = "client_id and client_secret are required"
	msgTokenMissing  = "auth_token is required: generate one with generate-auth-token"
	msgFaceMissing   = "face_auth_token is required: the token a result call returned for an approved request"
	msgBiometric     = `biometric_result must be "PASS" or "FAIL"`
	msgFence         = "latitude, longitude and radius_meters go together: give all three or none"
	msgTimestamp     = "timestamp must be an RFC 3339 time within 5 minutes of the server's clock"
	msgRequestID     = "request_id must be a request id a request call returned (apr_...)"
	msgNoRequest     = "The user has no authentication request; send one with biometric-auth-request first."
)

// maxSkew is how far the seed's timestamp may be from the server's clock,
// as for a device's answer.
const maxSkew = 5 * time.Minute

// resolveUser reads the user the body's mobile number names into c.user:
// mobile or mobile_number, in any spelling store.NormalizeMobile reads
// (+CC..., or the national number with country_code, spaces and dashes
// allowed). 400 naming the field for a number that is none, 404
// USER_NOT_FOUND for one no user of the organization has (another
// organization's users included).
func (s *Surface) resolveUser(c *reqCtx) bool {
	b := &c.body
	number, field := b.Mobile, "mobile"
	switch {
	case b.Mobile != "" && b.MobileNumber != "":
		return c.Failf(httpd.ErrInvalidField, msgMobileTwice)
	case b.MobileNumber != "":
		number, field = b.MobileNumber, "mobile_number"
	case b.Mobile == "":
		return c.Failf(httpd.ErrMissingField, msgMobileMissing)
	}
	e164, err := store.NormalizeMobile(b.CountryCode, number)
	if err != nil {
		return c.Failf(httpd.ErrInvalidField, field, " must be a mobile number, +CC then the number, or the national number with country_code: ",
			strings.TrimPrefix(err.Error(), store.ErrMobile.Error()+": "))
	}
	return s.readUser(c, func() (store.User, error) { return s.db.UserByMobile(c.org.ID, e164) },
		"No user with the mobile number "+e164+" is registered with this organization.")
}

// readUser reads a user into c.user with read, answering 404
// USER_NOT_FOUND with msg when there is none.
func (s *Surface) readUser(c *reqCtx, read func() (store.User, error), msg string) bool {
	u, err := read()
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return c.Failf(httpd.ErrUserNotFound, msg)
		}
		return c.StoreFailed(err)
	}
	c.user = u
	return true
}

// authRequest answers biometric-auth-request and verify-user: a push
// approval for the user, created on the engine under the organization's
// settings and limits. The iVALT surface has no OTP step, so a denial
// does not hold the user's next request back (otpAfterDenial).
func (s *Surface) authRequest(c *reqCtx) {
	if !c.decode() || !s.resolveUser(c) {
		return
	}
	id, err := s.db.NewApprovalID()
	if err != nil {
		c.StoreFailed(err)
		return
	}
	msg := "Approve the sign-in request"
	if from := c.body.RequestFrom; from != "" && len(from) <= 200 {
		msg += " from " + from
	}
	ip, _ := netip.AddrFromSlice(c.RC.RemoteIP())
	ar := approval.Request{ID: id, UserID: c.user.UserID, Message: msg, Method: approval.MethodPush, SourceIP: ip.Unmap()}
	conf, ok := c.OrgApprovals(s.orgs, c.org.ID)
	if !ok {
		return
	}
	cfg := &conf.Settings
	now := s.now()
	a := &c.appr
	if err := approval.New(a, &ar, cfg, now, rand.Reader); err != nil {
		s.log.Error("ivalt approval", "err", err)
		c.Fail(httpd.ErrInternal, nil)
		return
	}
	var retryAt time.Time
	err = s.db.CreateApproval(c.org.ID, a, func(u *approval.UserState, adm *approval.Admission) error {
		adm.Method = approval.MethodPush
		adm.HonourTokenRequired = false
		var aerr error
		retryAt, aerr = approval.Admit(u, cfg, adm, now)
		return aerr
	})
	if err != nil {
		s.admissionFailed(c, err, retryAt, now)
		return
	}
	s.core.Hub().Publish(httpd.TopicKey(httpd.TopicUserApprovals, c.org.ID.String(), a.UserID))

	c.Status = fasthttp.StatusOK
	c.Out = append(c.Out[:0], `{"status":"success","message":"Authentication request sent to the user's phone.","success":true,"request_id":`...)
	c.Out = jsonwire.AppendString(c.Out, a.ID)
	c.Out = append(c.Out, `,"data":{"status":"pending","message":"The user has not answered yet.","details":{`...)
	c.Out = appendRequestDetails(c.Out, a, &c.user)
	c.Out = append(c.Out, `}}}`...)
}

// admissionFailed answers CreateApproval's refusal.
func (s *Surface) admissionFailed(c *reqCtx, err error, retryAt, now time.Time) {
	switch {
	case errors.Is(err, store.ErrNotFound):
		c.Fail(httpd.ErrUserNotFound, nil)
	case errors.Is(err, approval.ErrLocked):
		c.Fail(httpd.ErrUserLocked, nil)
		c.RetryAt(retryAt, now)
	case errors.Is(err, approval.ErrTooManyPending):
		c.Failf(errRateLimit, "The user has as many pending requests as allowed; retry when one is answered or times out, after the Retry-After seconds.")
		c.RetryAt(retryAt, now)
	case errors.Is(err, approval.ErrRateLimited):
		c.Failf(errRateLimit, "The user was sent as many requests as allowed in the last minutes; retry after the Retry-After seconds.")
		c.RetryAt(retryAt, now)
	default:
		c.StoreFailed(err)
	}
}

// appendRequestDetails appends the members every answer about one request
// carries: its id, the user, and when it is due.
func appendRequestDetails(dst []byte, a *approval.Approval, u *store.User) []byte {
	dst = append(dst, `"request_id":`...)
	dst = jsonwire.AppendString(dst, a.ID)
	dst = append(dst, `,"user_id":`...)
	dst = jsonwire.AppendString(dst, u.UserID)
	dst = append(dst, `,"mobile":`...)
	dst = jsonwire.AppendString(dst, u.Mobile)
	dst = append(dst, `,"created_at":"`...)
	dst = a.CreatedAt.UTC().AppendFormat(dst, time.RFC3339)
	dst = append(dst, `","expires_at":"`...)
	dst = a.ExpiresAt.UTC().AppendFormat(dst, time.RFC3339)
	return append(dst, '"')
}

// authResult answers biometric-auth-result, biometric-geo-fence-auth-results
// {mobile} and validate/global/rest/auth (withToken: the body's auth_token
// must be one this organization was issued): the state of the user's
// latest request, or of the one request_id names.
func (s *Surface) authResult(c *reqCtx, withToken bool) {
	if !c.decode() {
		return
	}
	s.result(c, withToken)
}

func (s *Surface) result(c *reqCtx, withToken bool) {
	b := &c.body
	now := s.now()
	if withToken && !s.checkAuthToken(c, now) {
		return
	}
	if (b.Latitude != nil || b.Longitude != nil || b.RadiusMeters != nil) &&
		(b.Latitude == nil || b.Longitude == nil || b.RadiusMeters == nil) {
		c.Failf(httpd.ErrInvalidField, msgFence)
		return
	}
	if b.RequestID != "" && !validRequestID(b.RequestID) {
		c.Failf(httpd.ErrInvalidField, msgRequestID)
		return
	}
	if !s.resolveUser(c) {
		return
	}
	a := &c.appr
	if b.RequestID != "" {
		err := s.db.Approval(c.org.ID, b.RequestID, a)
		if errors.Is(err, store.ErrNotFound) || err == nil && a.UserID != c.user.UserID {
			c.Fail(httpd.ErrApprovalNotFound, nil)
			return
		}
		if err != nil {
			c.StoreFailed(err)
			return
		}
	} else {
		list, _, err := s.db.ApprovalsOfUser(c.org.ID, c.user.UserID, 1, "")
		if err != nil {
			c.StoreFailed(err)
			return
		}
		if len(list) == 0 {
			c.Failf(httpd.ErrApprovalNotFound, msgNoRequest)
			return
		}
		*a = list[0]
	}
	var fence *rules.FactorResult
	if b.Latitude != nil && a.StatusAt(now) == approval.StatusApproved {
		// The circle is measured against where the device was when it
		// answered, kept on the approval; no location there fails it.
		c.in = rules.Input{Location: a.Location, RequestFence: rules.Circle{Present: true,
			Lat: *b.Latitude, Lon: *b.Longitude, RadiusMeters: *b.RadiusMeters}}
		rules.Evaluate(nil, &c.in, now, &c.res)
		fence = &c.res.Factors[rules.FactorGeoFence]
		if fence.Outcome != rules.Pass {
			s.appendOutsideFence(c, fence)
			return
		}
	}
	var faceToken string
	if a.StatusAt(now) == approval.StatusApproved && !a.ResultToken.Issued() {
		// The first read of an approved request hands out its one-time
		// face_auth_token; the store keeps only its hash.
		_, err := s.db.UpdateApproval(c.org.ID, a.ID, a, &c.ustate,
			func(a *approval.Approval, _ *approval.UserState) (approval.Effect, error) {
				tok, err := approval.IssueResultToken(a, rand.Reader, now)
				faceToken = tok
				return approval.Effect{Status: a.Status}, err
			})
		if err != nil && !errors.Is(err, approval.ErrTokenIssued) {
			c.StoreFailed(err)
			return
		}
	}
	s.appendResult(c, now, faceToken, fence)
}

// validRequestID reports whether id can be a store approval id.
func validRequestID(id string) bool {
	const n = len(store.ApprovalIDPrefix) + 24
	if len(id) != n || !strings.HasPrefix(id, store.ApprovalIDPrefix) {
		return false
	}
	for i := len(store.ApprovalIDPrefix); i < n; i++ {
		if ch := id[i]; !(ch >= 'a' && ch <= 'z' || ch >= '2' && ch <= '7') {
			return false
		}
	}
	return true
}

// appendResult answers the state of c.appr at now: 200 approved, 422
// pending, 403 otherwise, each with the request and every factor in data
// (with fence, the request's circle the approval passed, when one was sent).
func (s *Surface) appendResult(c *reqCtx, now time.Time, faceToken string, fence *rules.FactorResult) {
	a := &c.appr
	st := a.StatusAt(now)
	var e *httpd.Error
	switch st {
	case approval.StatusApproved:
		s.appendApproved(c, faceToken, fence)
		return
	case approval.StatusPending:
		e = errAuthPending
	case approval.StatusDenied:
		e = errAuthDenied
	case approval.StatusExpired:
		e = errAuthExpired
	case approval.StatusCancelled:
		e = errAuthCancelled
	default:
		e = failedFactorError(a.Factors)
	}
	c.Msg = c.Msg[:0]
	if st == approval.StatusFailed {
		c.Msg = appendFailedReasons(append(c.Msg, "Authentication failed: "...), a.Factors)
	}
	c.Status = e.Status
	c.Out = appendErrorOpen(c.Out[:0], e, c.Msg)
	c.Out = append(c.Out, `,"data":{"status":"`...)
	c.Out = append(c.Out, st.String()...)
	c.Out = append(c.Out, `","details":{`...)
	c.Out = appendRequestDetails(c.Out, a, &c.user)
	c.Out = append(c.Out, `,"factors":`...)
	c.Out = a.AppendFactorsJSON(c.Out)
	c.Out = append(c.Out, `}}}`...)
}

// appendOutsideFence answers 403 INVALID_GEOFENCE for an approved request
// whose device was outside the circle the poll sent (or sent no location):
// the approval itself stays approved, but not for this requester's area.
func (s *Surface) appendOutsideFence(c *reqCtx, fence *rules.FactorResult) {
	c.Msg = append(c.Msg[:0], "Authentication failed: "...)
	c.Msg = append(c.Msg, factorRequestFence...)
	c.Msg = append(c.Msg, ": "...)
	c.Msg = append(c.Msg, fence.Reason...)
	c.Msg = append(c.Msg, '.')
	c.Status = errGeofence.Status
	c.Out = appendErrorOpen(c.Out[:0], errGeofence, c.Msg)
	c.Out = append(c.Out, `,"data":{"status":"failed","details":{`...)
	c.Out = appendRequestDetails(c.Out, &c.appr, &c.user)
	c.Out = append(c.Out, `,"factors":`...)
	c.Out = c.appendFactors(c.Out, fence)
	c.Out = append(c.Out, `}}}`...)
}

// factorRequestFence names the circle a result poll sends, beside the
// organization's geo_fence, in the factors of its answer.
const factorRequestFence = "request_geo_fence"

// appendFactors appends the approval's factors and, when fence is not nil,
// the request's circle as one more, with its centre and radius:
// {"factor":"request_geo_fence","result",..,"reason",..,"latitude",
// "longitude","radius_meters"}.
func (c *reqCtx) appendFactors(dst []byte, fence *rules.FactorResult) []byte {
	dst = c.appr.AppendFactorsJSON(dst)
	if fence == nil {
		return dst
	}
	dst = dst[:len(dst)-1] // the list's ']'
	if len(c.appr.Factors) > 0 {
		dst = append(dst, ',')
	}
	dst = rules.AppendFactorJSON(dst, factorRequestFence, fence.Outcome, fence.Reason)
	dst = dst[:len(dst)-1] // the factor's '}'
	req := &c.in.RequestFence
	dst = append(dst, `,"latitude":`...)
	dst = jsonwire.AppendFloat(dst, req.Lat, 64)
	dst = append(dst, `,"longitude":`...)
	dst = jsonwire.AppendFloat(dst, req.Lon, 64)
	dst = append(dst, `,"radius_meters":`...)
	dst = jsonwire.AppendFloat(dst, req.RadiusMeters, 64)
	return append(dst, `}]`...)
}

// failedFactorError is the refusal of a failed request: the time window's
// first, then the geo-fence's (the order iVALT's plugin reads error.detail
// in), else a plain failure (biometric, IP, device, number matching).
func failedFactorError(fs []approval.FactorOutcome) *httpd.Error {
	geo := false
	for i := range fs {
		if fs[i].Outcome != rules.Fail {
			continue
		}
		switch fs[i].Factor {
		case approval.Factor(rules.FactorTimeWindow):
			return errTimezone
		case approval.Factor(rules.FactorGeoFence):
			geo = true
		}
	}
	if geo {
		return errGeofence
	}
	return errAuthFailed
}

// appendFailedReasons appends the reasons of the failed factors, each
// named: "geo_fence: the device is outside ...; time_window: ...". Only
// the failed ones, so that a word a client looks for ("timezone") appears
// only when its factor failed.
func appendFailedReasons(dst []byte, fs []approval.FactorOutcome) []byte {
	n := 0
	for i := range fs {
		if fs[i].Outcome != rules.Fail {
			continue
		}
		if n > 0 {
			dst = append(dst, "; "...)
		}
		dst = append(dst, fs[i].Factor.String()...)
		dst = append(dst, ": "...)
		dst = append(dst, fs[i].Reason...)
		n++
	}
	return append(dst, '.')
}

// appendApproved answers 200 for an approved request, with its
// face_auth_token when this read issued it, and the request's circle among
// the factors when the poll sent one (fence).
func (s *Surface) appendApproved(c *reqCtx, faceToken string, fence *rules.FactorResult) {
	a := &c.appr
	c.Status = fasthttp.StatusOK
	c.Out = append(c.Out[:0], `{"status":"success","message":"The user approved the request.","authenticated":true,"user":{"mobile_number":`...)
	c.Out = jsonwire.AppendString(c.Out, c.user.Mobile)
	c.Out = append(c.Out, `,"verified_at":"`...)
	c.Out = a.DecidedAt.UTC().AppendFormat(c.Out, time.RFC3339)
	c.Out = append(c.Out, `"},"data":{"status":"approved","message":"Every factor passed.","details":{`...)
	c.Out = appendRequestDetails(c.Out, a, &c.user)
	c.Out = append(c.Out, `,"verified_at":"`...)
	c.Out = a.DecidedAt.UTC().AppendFormat(c.Out, time.RFC3339)
	c.Out = append(c.Out, `","device_id":`...)
	c.Out = jsonwire.AppendString(c.Out, a.DeviceID)
	if faceToken != "" {
		c.Out = append(c.Out, `,"face_auth_token":`...)
		c.Out = jsonwire.AppendString(c.Out, a.ID+"."+faceToken)
	}
	c.Out = append(c.Out, `,"factors":`...)
	c.Out = c.appendFactors(c.Out, fence)
	c.Out = append(c.Out, `}}}`...)
}

// submitResults answers the documented biometric-geo-fence-auth-results.
// With the seed's body {user_id, biometric_result, geo_fence_result,
// device_info, timestamp} the integrator's own app did the biometric step,
// and the rules engine judges it: 200 when every factor passes, 403 naming
// the failed factor otherwise, every factor listed either way. With only
// {mobile} it is the plugin's result poll.
func (s *Surface) submitResults(c *reqCtx) {
	if !c.decode() {
		return
	}
	b := &c.body
	if b.UserID == "" && b.BiometricResult == "" {
		s.result(c, false)
		return
	}
	var bio rules.Biometric
	switch {
	case b.UserID == "":
		c.Failf(httpd.ErrMissingField, "user_id is required with biometric_result: the user_id verify-user returned")
		return
	case strings.EqualFold(b.BiometricResult, "PASS"):
		bio = rules.BiometricPass
	case strings.EqualFold(b.BiometricResult, "FAIL"):
		bio = rules.BiometricFail
	default:
		c.Failf(httpd.ErrInvalidField, msgBiometric)
		return
	}
	now := s.now()
	if b.Timestamp != "" {
		ts, err := time.Parse(time.RFC3339, b.Timestamp)
		if err != nil || ts.Sub(now) > maxSkew || now.Sub(ts) > maxSkew {
			c.Failf(httpd.ErrInvalidField, msgTimestamp)
			return
		}
	}
	if len(b.UserID) > approval.MaxUserIDLen {
		c.Failf(httpd.ErrUserNotFound, "No user with this user_id is registered with this organization.")
		return
	}
	if !s.readUser(c, func() (store.User, error) { return s.db.User(c.org.ID, b.UserID) },
		"No user with this user_id is registered with this organization.") {
		return
	}
	ip, _ := netip.AddrFromSlice(c.RC.RemoteIP())
	c.in = rules.Input{UserID: jsonwire.StringBytes(c.user.UserID), Biometric: bio, IP: ip.Unmap(),
		Device: rules.Device{Registered: c.user.Devices > 0}}
	if g := b.GeoFenceResult; g != nil {
		c.in.Location = rules.Location{Present: true, Lat: g.Latitude, Lon: g.Longitude, AccuracyM: g.Accuracy}
	}
	if d := b.DeviceInfo; d != nil {
		c.in.Device.Platform = jsonwire.StringBytes(strings.ToLower(d.Platform))
		c.in.Device.AppVersion = jsonwire.StringBytes(d.AppVersion)
		c.in.Device.Jailbroken = d.Jailbroken
	}
	conf, ok := c.OrgApprovals(s.orgs, c.org.ID)
	if !ok {
		return
	}
	rules.Evaluate(conf.Rules, &c.in, now, &c.res)
	// The factors as an approval records them, so that both answers render
	// and judge them alike.
	fs := make([]approval.FactorOutcome, 0, rules.NumFactors)
	for i := range c.res.Factors {
		fs = append(fs, approval.FactorOutcome{Factor: approval.Factor(i), Outcome: c.res.Factors[i].Outcome,
			Reason: c.res.Factors[i].Reason})
	}
	if c.res.Failed() {
		e := failedFactorError(fs)
		c.Msg = appendFailedReasons(append(c.Msg[:0], "Authentication failed: "...), fs)
		c.Status = e.Status
		c.Out = appendErrorOpen(c.Out[:0], e, c.Msg)
		c.Out = append(c.Out, `,"data":{"status":"FAIL","details":`...)
		c.Out = appendFactorDetails(c.Out, &c.user, fs)
		c.Out = append(c.Out, `}}`...)
		return
	}
	c.Status = fasthttp.StatusOK
	c.Out = append(c.Out[:0], `{"status":"success","message":"Every factor passed.","data":{"status":"PASS","message":"Every factor passed.","details":`...)
	c.Out = appendFactorDetails(c.Out, &c.user, fs)
	c.Out = append(c.Out, `}}`...)
}

// appendFactorDetails appends {"user_id","mobile","biometric_result",
// "geo_fence_result",...,"factors":[...]}: each factor's outcome under
// the seed's names, and the list with reasons.
func appendFactorDetails(dst []byte, u *store.User, fs []approval.FactorOutcome) []byte {
	dst = append(dst, `{"user_id":`...)
	dst = jsonwire.AppendString(dst, u.UserID)
	dst = append(dst, `,"mobile":`...)
	dst = jsonwire.AppendString(dst, u.Mobile)
	for i := range fs {
		dst = append(dst, ',', '"')
		dst = append(dst, fs[i].Factor.String()...)
		dst = append(dst, `_result":"`...)
		dst = append(dst, fs[i].Outcome.String()...)
		dst = append(dst, '"')
	}
	dst = append(dst, `,"factors":[`...)
	for i := range fs {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = rules.AppendFactorJSON(dst, fs[i].Factor.String(), fs[i].Outcome, fs[i].Reason)
	}
	return append(dst, `]}`...)
}

// userByEmail answers get-user-by-email {email}: the user's contact details,
// data.details.mobile_with_country_code among them (what the OpenVPN
// plugin reads).
func (s *Surface) userByEmail(c *reqCtx) {
	if !c.decode() {
		return
	}
	if c.body.Email == "" {
		c.Failf(httpd.ErrMissingField, msgEmailMissing)
		return
	}
	email, err := store.NormalizeEmail(c.body.Email)
	if err != nil {
		c.Failf(httpd.ErrInvalidField, "email must be an e-mail address (local@domain)")
		return
	}
	if !s.readUser(c, func() (store.User, error) { return s.db.UserByEmail(c.org.ID, email) },
		"No user with the e-mail address "+email+" is registered with this organization.") {
		return
	}
	s.appendUser(c, "User found.")
}

// validatePerson answers validate/person {mobile}: whether the number is a
// registered user's, and whether the user has a device to approve with.
func (s *Surface) validatePerson(c *reqCtx) {
	if !c.decode() || !s.resolveUser(c) {
		return
	}
	s.appendUser(c, "The person is registered.")
}

// appendUser answers 200 with c.user's details.
func (s *Surface) appendUser(c *reqCtx, msg string) {
	u := &c.user
	c.Status = fasthttp.StatusOK
	c.Out = append(c.Out[:0], `{"status":"success","message":`...)
	c.Out = jsonwire.AppendString(c.Out, msg)
	c.Out = append(c.Out, `,"data":{"status":"success","message":`...)
	c.Out = jsonwire.AppendString(c.Out, msg)
	c.Out = append(c.Out, `,"details":{"user_id":`...)
	c.Out = jsonwire.AppendString(c.Out, u.UserID)
	c.Out = append(c.Out, `,"name":`...)
	c.Out = jsonwire.AppendString(c.Out, u.Name)
	c.Out = append(c.Out, `,"email":`...)
	c.Out = jsonwire.AppendString(c.Out, u.Email)
	cc, national := splitMobile(u.Mobile)
	c.Out = append(c.Out, `,"mobile_with_country_code":`...)
	c.Out = jsonwire.AppendString(c.Out, u.Mobile)
	c.Out = append(c.Out, `,"country_code":`...)
	c.Out = jsonwire.AppendString(c.Out, cc)
	c.Out = append(c.Out, `,"mobile":`...)
	c.Out = jsonwire.AppendString(c.Out, national)
	c.Out = append(c.Out, `,"registered_device":`...)
	c.Out = jsonwire.AppendBool(c.Out, u.Devices > 0)
	c.Out = append(c.Out, `}}}`...)
}

// splitMobile splits an E.164 number into iVALT's country_code ("+91") and
// national number; "" and "" for none.
func splitMobile(e164 string) (string, string) {
	if e164 == "" {
		return "", ""
	}
	num, err := phonenumbers.Parse(e164, "ZZ")
	if err != nil {
		return "", e164
	}
	return "+" + itoa(int(num.GetCountryCode())), phonenumbers.GetNationalSignificantNumber(num)
}

func itoa(n int) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		if n /= 10; n == 0 {
			return string(b[i:])
		}
	}
}

// generateToken answers generate-auth-token and api/v1/auth {client_id,
// client_secret}: the organization's client id and one of its backend API
// keys (the one in x-api-key or another) buy a short-lived auth_token.
func (s *Surface) generateToken(c *reqCtx) {
	if !c.decode() {
		return
	}
	b := &c.body
	if b.ClientID == "" || b.ClientSecret == "" {
		c.Failf(httpd.ErrMissingField, msgClientMissing)
		return
	}
	idOK := subtle.ConstantTimeCompare([]byte(b.ClientID), []byte(c.org.CID)) == 1
	ce, err := s.orgs.APIKey([]byte(b.ClientSecret))
	switch {
	case err != nil && !errors.Is(err, store.ErrNotFound):
		c.StoreFailed(err)
		return
	case err != nil || !idOK || ce.Scope != store.ScopeBackend || ce.Stored.ID != c.org.ID:
		c.Fail(errClientInvalid, nil)
		return
	}
	tok, err := s.tokens.issue(c.org.ID, s.now())
	if err != nil {
		s.log.Error("ivalt auth token randomness", "err", err)
		c.Fail(httpd.ErrInternal, nil)
		return
	}
	c.Status = fasthttp.StatusOK
	// The token is at the top, as request_id is on the request calls, and
	// in data.details, where the envelope keeps everything else.
	c.Out = append(c.Out[:0], `{"status":"success","message":"Authentication token generated.","auth_token":`...)
	c.Out = jsonwire.AppendString(c.Out, tok)
	c.Out = append(c.Out, `,"data":{"status":"success","message":"Authentication token generated.","details":{"auth_token":`...)
	c.Out = jsonwire.AppendString(c.Out, tok)
	c.Out = append(c.Out, `,"token_type":"Bearer","expires_in":`...)
	c.Out = append(c.Out, itoa(int(AuthTokenTTL/time.Second))...)
	c.Out = append(c.Out, `}}}`...)
}

// checkAuthToken answers 400 without the body's auth_token and 401 for one
// this organization was not issued or that expired.
func (s *Surface) checkAuthToken(c *reqCtx, now time.Time) bool {
	if c.body.AuthToken == "" {
		return c.Failf(httpd.ErrMissingField, msgTokenMissing)
	}
	if !s.tokens.valid(c.body.AuthToken, c.org.ID, now) {
		return c.Fail(errAuthTokenInvalid, nil)
	}
	return true
}

// validateUser answers api/v1/validate/user {face_auth_token, auth_token}:
// the one-time token an approved request yielded is spent, and the request
// answered as approved. A token that does not match, was spent, or
// expired is refused alike in its code (the sentence says which, after the
// match, so a wrong token learns nothing).
func (s *Surface) validateUser(c *reqCtx) {
	if !c.decode() {
		return
	}
	now := s.now()
	if !s.checkAuthToken(c, now) {
		return
	}
	ft := c.body.FaceToken
	if ft == "" {
		c.Failf(httpd.ErrMissingField, msgFaceMissing)
		return
	}
	id, secret, ok := strings.Cut(ft, ".")
	if !ok || !validRequestID(id) {
		c.Fail(errFaceTokenInvalid, nil)
		return
	}
	_, err := s.db.UpdateApproval(c.org.ID, id, &c.appr, &c.ustate,
		func(a *approval.Approval, _ *approval.UserState) (approval.Effect, error) {
			return approval.Effect{Status: a.Status}, approval.RedeemToken(a, secret, now)
		})
	switch {
	case errors.Is(err, store.ErrNotFound), errors.Is(err, approval.ErrTokenWrong), errors.Is(err, approval.ErrTokenState):
		c.Fail(errFaceTokenInvalid, nil)
		return
	case errors.Is(err, approval.ErrTokenUsed):
		c.Failf(errFaceTokenInvalid, "The face_auth_token was used already; each is good for one validation.")
		return
	case errors.Is(err, approval.ErrTokenExpired):
		c.Failf(errFaceTokenInvalid, "The face_auth_token has expired; it is good for one minute after the result call that returned it.")
		return
	case err != nil:
		c.StoreFailed(err)
		return
	}
	if !s.readUser(c, func() (store.User, error) { return s.db.User(c.org.ID, c.appr.UserID) },
		"The user of this request is no longer registered with this organization.") {
		return
	}
	s.appendApproved(c, "", nil)
}
