package admin

import (
	"encoding/base64"
	"errors"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/countersign/countersign/engine/approval"
	"github.com/countersign/countersign/server/httpd"
	"github.com/countersign/countersign/server/jsonwire"
	"github.com/countersign/countersign/store"
)

// The audit trail: a user's approvals and validate decisions, newest first,
// and one approval with the device's receipt. The lists are of what was
// asked under a userID, so a user the organization does not have (or has
// deleted, or another organization's) lists nothing rather than 404: the
// record outlives the user it was about.

const msgAuditUserID = "userID is required: the user whose records to list (1 to 256 bytes without control characters or '/')"

// pageArgs reads ?limit=&cursor= of a paged list; ok false after
// answering 400 naming the bad one.
func (c *reqCtx) pageArgs() (limit int, cursor string, ok bool) {
	args := c.RC.QueryArgs()
	limit = store.DefaultPageLimit
	if v := args.Peek("limit"); v != nil {
		n, err := strconv.Atoi(string(v))
		if err != nil || n < 1 || n > store.MaxPageLimit {
			return 0, "", c.Failf(httpd.ErrInvalidField, msgLimit)
		}
		limit = n
	}
	return limit, string(args.Peek("cursor")), true
}

// auditArgs is pageArgs and the required ?userID= of an audit list.
func (c *reqCtx) auditArgs() (userID string, limit int, cursor string, ok bool) {
	userID = string(c.RC.QueryArgs().Peek("userID"))
	if !validUserID(userID) {
		return "", 0, "", c.Failf(httpd.ErrInvalidField, msgAuditUserID)
	}
	limit, cursor, ok = c.pageArgs()
	return userID, limit, cursor, ok
}

// pageFailed answers a store error of a paged list.
func (c *reqCtx) pageFailed(err error) {
	if errors.Is(err, store.ErrCursor) {
		c.Failf(httpd.ErrInvalidField, msgCursor)
		return
	}
	c.StoreFailed(err)
}

// listApprovals answers GET /admin/v1/approvals?userID=&limit=&cursor=:
// a page of the user's approvals, newest first, whatever their status.
func (s *Surface) listApprovals(c *reqCtx) {
	userID, limit, cursor, ok := c.auditArgs()
	if !ok {
		return
	}
	list, next, err := s.db.ApprovalsOfUser(c.org.ID, userID, limit, cursor)
	if err != nil {
		c.pageFailed(err)
		return
	}
	now := s.now()
	c.Status = fasthttp.StatusOK
	c.Out = append(c.Out[:0], `{"items":[`...)
	for i := range list {
		if i > 0 {
			c.Out = append(c.Out, ',')
		}
		c.Out = appendAuditApproval(c.Out, &list[i], now)
		c.Out = append(c.Out, '}')
	}
	c.Out = append(c.Out, `],"next":`...)
	c.Out = jsonwire.AppendString(c.Out, next)
	c.Out = append(c.Out, '}')
}

// getApproval answers GET /admin/v1/approvals/{id}: the approval as listed,
// with its factors, the rules version that decided them, and the receipt
// (null until a device's answer is accepted). The receipt carries what
// rebuilds the signed bytes beside the approval's id and values
// (approval.AppendSignedBytes: the challenge, decision, biometric result
// and timestamp) and the answering device's public key, so anyone can
// check the signature without trusting this server's word.
func (s *Surface) getApproval(c *reqCtx, id string) {
	a := &c.appr
	if err := s.db.Approval(c.org.ID, id, a); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			c.Fail(httpd.ErrApprovalNotFound, nil)
			return
		}
		c.StoreFailed(err)
		return
	}
	var pub []byte
	if a.HasReceipt() {
		// A device is never deleted alone, only revoked; its user's
		// deletion takes it, and then the key is no longer known ("").
		d, err := s.db.Device(c.org.ID, a.DeviceID)
		switch {
		case err == nil:
			pub = d.PublicKey[:]
		case !errors.Is(err, store.ErrNotFound):
			c.StoreFailed(err)
			return
		}
	}
	c.Status = fasthttp.StatusOK
	c.Out = appendAuditApproval(c.Out[:0], a, s.now())
	c.Out = append(c.Out, `,"rulesVersion":`...)
	c.Out = strconv.AppendUint(c.Out, a.RulesVersion, 10)
	c.Out = append(c.Out, `,"factors":`...)
	c.Out = a.AppendFactorsJSON(c.Out)
	c.Out = append(c.Out, `,"receipt":`...)
	if !a.HasReceipt() {
		c.Out = append(c.Out, `null}`...)
		return
	}
	r := &a.Receipt
	c.Out = append(c.Out, `{"decision":"`...)
	c.Out = append(c.Out, r.Decision.String()...)
	c.Out = append(c.Out, `","biometric":"`...)
	c.Out = append(c.Out, r.Biometric.String()...)
	c.Out = append(c.Out, `","timestamp":`...)
	c.Out = jsonwire.AppendString(c.Out, r.Timestamp)
	c.Out = append(c.Out, `,"challenge":"`...)
	c.Out = base64.RawURLEncoding.AppendEncode(c.Out, a.Challenge[:])
	c.Out = append(c.Out, `","signature":"`...)
	c.Out = base64.RawURLEncoding.AppendEncode(c.Out, r.Signature[:])
	c.Out = append(c.Out, `","publicKey":"`...)
	c.Out = base64.RawURLEncoding.AppendEncode(c.Out, pub)
	c.Out = append(c.Out, `"}}`...)
}

// appendAuditApproval appends a at now, without its closing brace:
// {"approvalID","userID","status","method","message","values","createdAt",
// "expiresAt","decidedAt","deviceID". Times are Unix milliseconds;
// decidedAt is null while pending, deviceID "" unless a device answered.
func appendAuditApproval(dst []byte, a *approval.Approval, now time.Time) []byte {
	st := a.StatusAt(now)
	dst = append(dst, `{"approvalID":`...)
	dst = jsonwire.AppendString(dst, a.ID)
	dst = append(dst, `,"userID":`...)
	dst = jsonwire.AppendString(dst, a.UserID)
	dst = append(dst, `,"status":"`...)
	dst = append(dst, st.String()...)
	dst = append(dst, `","method":"`...)
	dst = append(dst, a.Method.String()...)
	dst = append(dst, `","message":`...)
	dst = jsonwire.AppendString(dst, a.Message)
	dst = append(dst, `,"values":`...)
	dst = jsonwire.AppendApprovalValues(dst, a.Values)
	dst = append(dst, `,"createdAt":`...)
	dst = strconv.AppendInt(dst, a.CreatedAt.UnixMilli(), 10)
	dst = append(dst, `,"expiresAt":`...)
	dst = strconv.AppendInt(dst, a.ExpiresAt.UnixMilli(), 10)
	dst = append(dst, `,"decidedAt":`...)
	dst = jsonwire.AppendDecidedAt(dst, a, now)
	dst = append(dst, `,"deviceID":`...)
	return jsonwire.AppendString(dst, a.DeviceID)
}

// listDecisions answers GET /admin/v1/decisions?userID=&limit=&cursor=: a
// page of the validate decisions made for the user, newest first, each as
// GET /v1/decisions/{id} answers it.
func (s *Surface) listDecisions(c *reqCtx) {
	userID, limit, cursor, ok := c.auditArgs()
	if !ok {
		return
	}
	if s.appendDecision == nil {
		c.Fail(httpd.ErrInternal, nil)
		return
	}
	list, next, err := s.db.DecisionsOfUser(c.org.ID, userID, limit, cursor)
	if err != nil {
		c.pageFailed(err)
		return
	}
	c.Status = fasthttp.StatusOK
	c.Out = append(c.Out[:0], `{"items":[`...)
	for i := range list {
		if i > 0 {
			c.Out = append(c.Out, ',')
		}
		if c.Out, err = s.appendDecision(c.Out, &list[i]); err != nil {
			c.Out = c.Out[:0]
			c.Fail(httpd.ErrInternal, nil)
			return
		}
	}
	c.Out = append(c.Out, `],"next":`...)
	c.Out = jsonwire.AppendString(c.Out, next)
	c.Out = append(c.Out, '}')
}
