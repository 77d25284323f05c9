package unloq

import (
	"errors"
	"strconv"
	"strings"

	"github.com/valyala/fasthttp"

	"github.com/countersign/countersign/engine/approval"
	"github.com/countersign/countersign/server/httpd"
	"github.com/countersign/countersign/server/jsonwire"
	"github.com/countersign/countersign/store"
)

// A result token names its approval: the approval id, a dot, and the
// one-time secret (approval.IssueResultToken), so that /token finds the
// approval without an index of tokens, and only the secret's hash is kept.
const tokenSep = '.'

func appendToken(dst []byte, approvalID, secret string) []byte {
	dst = append(dst, approvalID...)
	dst = append(dst, tokenSep)
	return append(dst, secret...)
}

// splitToken returns the approval id and secret of a result token.
func splitToken(tok string) (id, secret string, ok bool) {
	i := strings.IndexByte(tok, tokenSep)
	if i < 0 || !validApprovalID(tok[:i]) {
		return "", "", false
	}
	return tok[:i], tok[i+1:], true
}

// Bounds of a session's duration, in seconds (UNLOQ's duration is the
// lifetime of the integrator's session, which it records).
const maxDuration = 30 * 24 * 3600

// tokenRequest is /token and /token/session's body.
type tokenRequest struct {
	token, approvalID, sid, ip string
	duration                   int64
}

// readToken reads a /token or /token/session body.
func (c *reqCtx) readToken(r *tokenRequest) bool {
	*r = tokenRequest{}
	return c.readFields(httpd.LimitSmall, func(name, value string, isString bool) bool {
		switch name {
		case "token":
			r.token = value
		case "approval_id":
			r.approvalID = value
		case "sid":
			r.sid = value // the client sends a number as its text
		case "ip":
			r.ip = value
		case "duration":
			n, err := strconv.ParseInt(value, 10, 64)
			if err != nil || n < 0 || n > maxDuration {
				return c.Failf(httpd.ErrInvalidField, "duration must be a whole number of seconds, 0 to 2592000")
			}
			r.duration = n
			return true
		default:
			return true // UNLOQ ignores what it does not know
		}
		return isString || c.Failf(httpd.ErrWrongType, name, " must be a string")
	})
}

// token answers POST /token {token, sid?, duration?, ip?}: the one-time
// result token of an approved authenticate, spent once within a minute,
// for the user's data.
func (s *Surface) token(c *reqCtx) {
	var r tokenRequest
	if !c.readToken(&r) {
		return
	}
	if r.token == "" {
		c.Failf(httpd.ErrMissingField, "token is required")
		return
	}
	if !s.redeem(c, r.token) {
		return
	}
	s.answerTokenData(c, r.sid, r.duration)
}

// redeem spends the result token tok of one of the organization's
// approvals, read into c.appr; every refusal is the one TOKEN.INVALID, so
// that a stranger's guess learns nothing.
func (s *Surface) redeem(c *reqCtx, tok string) bool {
	id, secret, ok := splitToken(tok)
	if !ok {
		return c.fail(outTokenBad)
	}
	now := s.now()
	_, err := s.db.UpdateApproval(c.org.ID, id, &c.appr, &c.state,
		func(a *approval.Approval, _ *approval.UserState) (approval.Effect, error) {
			return approval.Effect{Status: a.Status}, approval.RedeemToken(a, secret, now)
		})
	switch {
	case err == nil:
		return true
	case errors.Is(err, store.ErrNotFound), errors.Is(err, approval.ErrTokenWrong), errors.Is(err, approval.ErrTokenState),
		errors.Is(err, approval.ErrTokenUsed), errors.Is(err, approval.ErrTokenExpired):
		return c.fail(outTokenBad)
	}
	return c.StoreFailed(err)
}

// tokenSession answers POST /token/session {token | approval_id, sid,
// duration}: it ties the integrator's session to an approved approval,
// by its result token (spent here) or its id, and answers the session.
func (s *Surface) tokenSession(c *reqCtx) {
	var r tokenRequest
	if !c.readToken(&r) {
		return
	}
	switch {
	case r.token != "":
		if !s.redeem(c, r.token) {
			return
		}
	case r.approvalID != "":
		if !validApprovalID(r.approvalID) || !s.readApproval(c, r.approvalID) {
			if c.Status == 0 {
				c.Fail(httpd.ErrApprovalNotFound, nil)
			}
			return
		}
		if c.appr.StatusAt(s.now()) != approval.StatusApproved {
			c.Failf(httpd.ErrApprovalNotPending, "The approval is ", c.appr.StatusAt(s.now()).String(), ", not approved.")
			return
		}
	default:
		c.Failf(httpd.ErrMissingField, "token or approval_id is required")
		return
	}
	s.answerTokenData(c, r.sid, r.duration)
}

// answerTokenData answers the user's data for c.appr:
// {"type","result":{approval_id, unloq_id, email, first_name, last_name,
// method, ip_source, sid?, duration?}}.
func (s *Surface) answerTokenData(c *reqCtx, sid string, duration int64) {
	a := &c.appr
	u, err := s.db.User(c.org.ID, a.UserID)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		c.StoreFailed(err)
		return
	}
	u.UserID = a.UserID // a user deleted since keeps the id the approval names
	c.Status = fasthttp.StatusOK
	c.Out = append(c.Out[:0], `{"type":"api.application.token","result":{"approval_id":`...)
	c.Out = jsonwire.AppendString(c.Out, a.ID)
	c.Out = append(c.Out, `,"unloq_id":`...)
	c.Out = jsonwire.AppendString(c.Out, u.UserID)
	c.Out = appendUserData(c.Out, &u)
	c.Out = append(c.Out, `,"method":`...)
	c.Out = jsonwire.AppendString(c.Out, unloqMethod(a.Method))
	c.Out = append(c.Out, `,"ip_source":`...)
	if a.SourceIP.IsValid() {
		c.Out = append(c.Out, '"')
		c.Out = a.SourceIP.AppendTo(c.Out)
		c.Out = append(c.Out, '"')
	} else {
		c.Out = append(c.Out, "null"...)
	}
	if sid != "" {
		c.Out = append(c.Out, `,"sid":`...)
		c.Out = jsonwire.AppendString(c.Out, sid)
	}
	if duration > 0 {
		c.Out = append(c.Out, `,"duration":`...)
		c.Out = strconv.AppendInt(c.Out, duration, 10)
	}
	c.Out = append(c.Out, "}}"...)
}

// unloqMethod is UNLOQ's name of an approval's method.
func unloqMethod(m approval.Method) string {
	switch m {
	case approval.MethodOTP:
		return "OTP"
	case approval.MethodEmail:
		return "EMAIL"
	}
	return "UNLOQ"
}
