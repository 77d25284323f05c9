package unloq

import (
	"crypto/rand"
	"errors"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/countersign/countersign/engine/approval"
	"github.com/countersign/countersign/server/httpd"
	"github.com/countersign/countersign/server/jsonwire"
	"github.com/countersign/countersign/store"
)

// authenticate answers POST /authenticate: it sends the user a push
// approval and holds the request until the user answers, the wait
// (unloqWaitSeconds) passes or the server shuts down. With ?events=true
// (the Node.js client's default) it answers at once with a stream of
// events (stream.go); otherwise with one JSON answer once the hold ends.
// It reports whether it answered with the stream, in which case c belongs
// to the stream writer from then on.
func (s *Surface) authenticate(c *reqCtx) (streamed bool) {
	if !c.readAuthenticate() {
		return false
	}
	r := &c.req
	method, ok := parseMethod(r.method)
	if !ok {
		c.Failf(httpd.ErrInvalidField, `method must be "UNLOQ", "EMAIL" or "OTP"`)
		return false
	}
	ip, ok := c.sourceIP(r.ip)
	if !ok || !s.findUser(c) {
		return false
	}
	switch {
	case method == approval.MethodOTP && r.token == "":
		c.Failf(httpd.ErrMissingField, "token (the user's one-time code) is required for method OTP")
		return false
	case method == approval.MethodEmail && c.user.Email == "":
		c.fail(outNoEmail)
		return false
	case method == approval.MethodEmail && !s.notifierListens(c):
		return false
	case method == approval.MethodPush && c.user.Devices == 0:
		c.fail(outDevice)
		return false
	}
	conf, ok := c.OrgApprovals(s.orgs, c.org.ID)
	if !ok {
		return false
	}
	cfg := &conf.Settings
	if method != approval.MethodOTP && r.token != "" && !s.checkToken(c, cfg) {
		// The code that lifts the OTP requirement after a denial, sent
		// with a push request: checked (and counted) before the push.
		return false
	}
	id, err := s.db.NewApprovalID()
	if err != nil {
		c.StoreFailed(err)
		return false
	}
	ipText := ""
	if ip.IsValid() {
		ipText = ip.String()
	}
	var msgOK bool
	c.Msg, msgOK = expandMessage(c.Msg[:0], messageFor(&conf.Document, method), r.vars, &conf.Document, ipText, c.org.Name)
	if !msgOK {
		c.Failf(httpd.ErrInvalidField, "the message with its $variables is longer than 1024 bytes")
		return false
	}
	wait := time.Duration(cfg.UnloqWaitSeconds) * time.Second
	ar := approval.Request{ID: id, UserID: c.user.UserID, Message: string(c.Msg), Method: method,
		SourceIP: ip, Expiry: wait}
	now := s.now()
	a := &c.appr
	if err := approval.New(a, &ar, cfg, now, rand.Reader); err != nil {
		s.log.Error("unloq approval", "err", err)
		c.Fail(httpd.ErrInternal, nil)
		return false
	}
	c.resultSecret = ""
	if r.generateToken {
		// Drawn now and stored with the approval, redeemable only once it
		// is approved: the answer the instant it is approved then needs no
		// synced write of its own.
		if c.resultSecret, err = approval.IssueResultTokenAhead(a, rand.Reader); err != nil {
			s.log.Error("unloq result token", "err", err)
			c.Fail(httpd.ErrInternal, nil)
			return false
		}
	}
	// Subscribed before the approval exists, so that no decision can come
	// between its creation and the wait unseen (httpd.Hub).
	org := c.org.ID.String()
	if c.waiter, ok = c.Hold(httpd.TopicKey(httpd.TopicApproval, org, id)); !ok {
		return false
	}
	c.deadline = time.Now().Add(c.Route.HoldFor(wait))
	var retryAt time.Time
	admit := func(u *approval.UserState, adm *approval.Admission) error {
		adm.Method = method
		adm.HonourTokenRequired = true
		var aerr error
		retryAt, aerr = approval.Admit(u, cfg, adm, now)
		return aerr
	}
	if method == approval.MethodEmail {
		err = s.createEmailApproval(c, admit)
	} else {
		err = s.db.CreateApproval(c.org.ID, a, admit)
	}
	if err != nil {
		s.admissionFailed(c, err, retryAt, now)
		return false
	}
	if method == approval.MethodOTP {
		// Decided by the code at once; the hold below then finds it
		// approved and answers as for a push the user approved.
		if !s.decideOTP(c, cfg, r.token, now) {
			return false
		}
	} else if method == approval.MethodPush {
		s.core.Hub().Publish(httpd.TopicKey(httpd.TopicUserApprovals, org, c.user.UserID))
	}
	if string(c.RC.QueryArgs().Peek("events")) == "true" {
		s.startStream(c)
		return true
	}
	end := s.hold(c)
	s.answer(c, end)
	return false
}

// findUser reads the user the request names (email, else unloq_id) into
// c.user; another organization's user is answered as a missing one.
func (s *Surface) findUser(c *reqCtx) bool {
	var err error
	if c.req.email != "" {
		email, nerr := store.NormalizeEmail(c.req.email)
		if nerr != nil {
			return c.Failf(httpd.ErrInvalidField, "email must be an e-mail address")
		}
		c.user, err = s.db.UserByEmail(c.org.ID, email)
	} else {
		if len(c.req.unloqID) > approval.MaxUserIDLen {
			return c.fail(outUser)
		}
		c.user, err = s.db.User(c.org.ID, c.req.unloqID)
	}
	switch {
	case errors.Is(err, store.ErrNotFound):
		return c.fail(outUser)
	case err != nil:
		return c.StoreFailed(err)
	}
	return true
}

// admissionFailed answers CreateApproval's refusal.
func (s *Surface) admissionFailed(c *reqCtx, err error, retryAt, now time.Time) {
	switch {
	case errors.Is(err, store.ErrNotFound):
		c.fail(outUser)
	case errors.Is(err, approval.ErrTokenRequired):
		c.fail(outToken)
	case errors.Is(err, approval.ErrLocked):
		c.fail(outLocked)
		c.RetryAt(retryAt, now)
	case errors.Is(err, approval.ErrTooManyPending), errors.Is(err, approval.ErrRateLimited):
		c.fail(outThrottle)
		c.RetryAt(retryAt, now)
	default:
		c.StoreFailed(err)
	}
}

// end is how a held authenticate ended.
type end uint8

const (
	endApproved end = iota + 1
	endDenied       // the user denied: the next request needs the OTP
	endFailed       // approved on the device, refused by the checks
	endTimeout      // expired, cancelled, or the wait passed
	endShutdown
	endError // the store failed; logged
)

// hold waits until c's approval is decided, the hold's deadline passes or
// the server shuts down, and says which; c.appr is the approval as last
// read. A wait that ends with the approval still pending cancels it, so
// that the device cannot approve a request nobody waits for.
func (s *Surface) hold(c *reqCtx) end {
	for {
		if st, ok := s.reread(c); !ok {
			return endError
		} else if st != approval.StatusPending {
			return endOf(st)
		}
		switch c.waiter.Wait(c.deadline) {
		case httpd.WakePublished:
			continue
		case httpd.WakeShutdown:
			// Not withdrawn: at shutdown every held request answers at
			// once, and a store write each would queue them behind one
			// another. The approval expires by itself, unanswered.
			return endShutdown
		}
		return s.timedOut(c)
	}
}

// reread reads c's approval afresh and returns its status now.
func (s *Surface) reread(c *reqCtx) (approval.Status, bool) {
	if err := s.db.Approval(c.org.ID, c.appr.ID, &c.appr); err != nil {
		s.log.Error("unloq: reading the held approval", "id", c.appr.ID, "err", err)
		return 0, false
	}
	return c.appr.StatusAt(s.now()), true
}

// timedOut ends a hold whose deadline passed: the approval is withdrawn,
// unless the device decided it in the meantime.
func (s *Surface) timedOut(c *reqCtx) end {
	if st := s.withdraw(c); st != approval.StatusPending && st != approval.StatusCancelled {
		return endOf(st)
	}
	return endTimeout
}

// withdraw cancels c's approval if it is still pending and returns its
// status after; a decision that came first stands.
func (s *Surface) withdraw(c *reqCtx) approval.Status {
	now := s.now()
	_, err := s.db.UpdateApproval(c.org.ID, c.appr.ID, &c.appr, &c.state,
		func(a *approval.Approval, _ *approval.UserState) (approval.Effect, error) {
			return approval.Effect{Status: a.Status}, a.Cancel(now)
		})
	if err == nil || errors.Is(err, approval.ErrExpired) {
		org := c.org.ID.String()
		s.core.Hub().Publish(httpd.TopicKey(httpd.TopicUserApprovals, org, c.appr.UserID))
	}
	return c.appr.StatusAt(now)
}

func endOf(st approval.Status) end {
	switch st {
	case approval.StatusApproved:
		return endApproved
	case approval.StatusDenied:
		return endDenied
	case approval.StatusFailed:
		return endFailed
	}
	return endTimeout
}

// answer writes the one JSON answer of a held authenticate that ended so.
func (s *Surface) answer(c *reqCtx, e end) {
	switch e {
	case endApproved:
		if !s.appendResult(c) {
			return
		}
		c.Status = fasthttp.StatusOK
		c.Out = append(c.Out[:0], `{"type":"api.application.approval.authenticate","result":`...)
		c.Out = append(c.Out, c.Msg...)
		c.Out = append(c.Out, '}')
	case endDenied:
		c.fail(outDenied)
	case endFailed:
		c.fail(outFailed)
	case endTimeout:
		c.fail(outTimeout)
	case endShutdown:
		c.fail(outShutdown)
		c.RC.Response.Header.Set(fasthttp.HeaderRetryAfter, "1")
	default:
		c.Fail(httpd.ErrStoreUnavailable, nil)
	}
}

// appendResult leaves in c.Msg the result of an approved authenticate:
// {"unloq_id","token"} with the one-time result token drawn when the
// approval was created (c.resultSecret), or with generate_token false the
// user's data directly.
func (s *Surface) appendResult(c *reqCtx) bool {
	u := &c.user
	c.Msg = append(c.Msg[:0], `{"unloq_id":`...)
	c.Msg = jsonwire.AppendString(c.Msg, u.UserID)
	if !c.req.generateToken {
		c.Msg = appendUserData(c.Msg, u)
		c.Msg = append(c.Msg, '}')
		return true
	}
	if c.resultSecret == "" {
		s.log.Error("unloq: an approved authenticate without its result token", "approval", c.appr.ID)
		return c.Fail(httpd.ErrInternal, nil)
	}
	c.Msg = append(c.Msg, `,"token":"`...)
	c.Msg = appendToken(c.Msg, c.appr.ID, c.resultSecret)
	c.Msg = append(c.Msg, `"}`...)
	return true
}

// appendUserData appends ,"email","first_name","last_name" of u: the name
// is split at its first space, as UNLOQ keeps the two apart.
func appendUserData(dst []byte, u *store.User) []byte {
	first, last := u.Name, ""
	for i := 0; i < len(u.Name); i++ {
		if u.Name[i] == ' ' {
			first, last = u.Name[:i], u.Name[i+1:]
			break
		}
	}
	dst = append(dst, `,"email":`...)
	dst = jsonwire.AppendString(dst, u.Email)
	dst = append(dst, `,"first_name":`...)
	dst = jsonwire.AppendString(dst, first)
	dst = append(dst, `,"last_name":`...)
	return jsonwire.AppendString(dst, last)
}
