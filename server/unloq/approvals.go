package unloq

import (
	"errors"
	"strconv"

	"github.com/valyala/fasthttp"

	"github.com/countersign/countersign/engine/approval"
	"github.com/countersign/countersign/server/httpd"
	"github.com/countersign/countersign/server/jsonwire"
	"github.com/countersign/countersign/store"
)

// approvalIDLen is the length of the store's approval ids (apr_ and 24
// base32 characters); anything else is answered 404 unread.
const approvalIDLen = len(store.ApprovalIDPrefix) + 24

// validApprovalID reports whether id can be a store approval id.
func validApprovalID(id string) bool {
	if len(id) != approvalIDLen || id[:len(store.ApprovalIDPrefix)] != store.ApprovalIDPrefix {
		return false
	}
	for i := len(store.ApprovalIDPrefix); i < len(id); i++ {
		if ch := id[i]; !(ch >= 'a' && ch <= 'z' || ch >= '2' && ch <= '7') {
			return false
		}
	}
	return true
}

// readApproval reads the organization's approval id into c.appr; another
// organization's is answered as a missing one.
func (s *Surface) readApproval(c *reqCtx, id string) bool {
	if err := s.db.Approval(c.org.ID, id, &c.appr); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return c.Fail(httpd.ErrApprovalNotFound, nil)
		}
		return c.StoreFailed(err)
	}
	return true
}

// getApproval answers GET /approvals/{id}.
func (s *Surface) getApproval(c *reqCtx, idParam []byte) {
	id := string(idParam)
	if !validApprovalID(id) {
		c.Fail(httpd.ErrApprovalNotFound, nil)
		return
	}
	if !s.readApproval(c, id) {
		return
	}
	c.Status = fasthttp.StatusOK
	c.Out = append(c.Out[:0], `{"type":"api.application.approval","result":`...)
	c.Out = s.appendApproval(c.Out, &c.appr)
	c.Out = append(c.Out, '}')
}

// listApprovals answers GET /approvals?email= | ?unloq_id= [&limit=&cursor=]:
// the user's approvals, newest first.
func (s *Surface) listApprovals(c *reqCtx) {
	q := c.RC.QueryArgs()
	c.req.reset()
	c.req.email, c.req.unloqID = string(q.Peek("email")), string(q.Peek("unloq_id"))
	if c.req.email == "" && c.req.unloqID == "" {
		c.Failf(httpd.ErrMissingField, "email or unloq_id is required")
		return
	}
	limit := 0
	if v := q.Peek("limit"); len(v) > 0 {
		n, err := strconv.Atoi(string(v))
		if err != nil || n < 1 || n > store.MaxPageLimit {
			c.Failf(httpd.ErrInvalidField, "limit must be 1 to 1000")
			return
		}
		limit = n
	}
	if !s.findUser(c) {
		return
	}
	list, next, err := s.db.ApprovalsOfUser(c.org.ID, c.user.UserID, limit, string(q.Peek("cursor")))
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			c.fail(outUser)
			return
		}
		c.Failf(httpd.ErrInvalidField, "cursor is not one this server gave")
		return
	}
	c.Status = fasthttp.StatusOK
	c.Out = append(c.Out[:0], `{"type":"api.application.approvals","result":{"items":[`...)
	for i := range list {
		if i > 0 {
			c.Out = append(c.Out, ',')
		}
		c.Out = s.appendApproval(c.Out, &list[i])
	}
	c.Out = append(c.Out, `],"next":`...)
	c.Out = jsonwire.AppendString(c.Out, next)
	c.Out = append(c.Out, "}}"...)
}

// appendApproval appends an approval as UNLOQ lists them: {"id",
// "unloq_id","method","status","ip_source","message","created_at",
// "expires_at","decided_at"}, times in Unix milliseconds (decided_at null
// while pending).
func (s *Surface) appendApproval(dst []byte, a *approval.Approval) []byte {
	st := a.StatusAt(s.now())
	dst = append(dst, `{"id":`...)
	dst = jsonwire.AppendString(dst, a.ID)
	dst = append(dst, `,"unloq_id":`...)
	dst = jsonwire.AppendString(dst, a.UserID)
	dst = append(dst, `,"method":`...)
	dst = jsonwire.AppendString(dst, unloqMethod(a.Method))
	dst = append(dst, `,"status":"`...)
	dst = append(dst, st.String()...)
	dst = append(dst, `","ip_source":`...)
	if a.SourceIP.IsValid() {
		dst = append(dst, '"')
		dst = a.SourceIP.AppendTo(dst)
		dst = append(dst, '"')
	} else {
		dst = append(dst, "null"...)
	}
	dst = append(dst, `,"message":`...)
	dst = jsonwire.AppendString(dst, a.Message)
	dst = append(dst, `,"created_at":`...)
	dst = strconv.AppendInt(dst, a.CreatedAt.UnixMilli(), 10)
	dst = append(dst, `,"expires_at":`...)
	dst = strconv.AppendInt(dst, a.ExpiresAt.UnixMilli(), 10)
	dst = append(dst, `,"decided_at":`...)
	switch {
	case st == approval.StatusPending:
		dst = append(dst, "null"...)
	case a.DecidedAt.IsZero():
		dst = strconv.AppendInt(dst, a.ExpiresAt.UnixMilli(), 10)
	default:
		dst = strconv.AppendInt(dst, a.DecidedAt.UnixMilli(), 10)
	}
	return append(dst, '}')
}
