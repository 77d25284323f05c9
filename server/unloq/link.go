package unloq

import (
	"bytes"
	"crypto/rand"
	"errors"

	"github.com/valyala/fasthttp"

	"github.com/countersign/countersign/engine/approval"
	"github.com/countersign/countersign/server/httpd"
	"github.com/countersign/countersign/store"
)

// The EMAIL method (DESIGN "UNLOQ-compatible surface"): the approval's
// one-time link is delivered as an approval.email webhook event to the
// organization's notifier, which mails it; opening it approves the
// approval and wakes the held authenticate. The link is the only
// credential of its route, so it names everything it needs:
//
//	/unloq/v1/link/{organization id}/{approval id}.{secret}
//
// The approval keeps only the secret's hash (approval.IssueLinkToken); the
// secret is compared in constant time, accepted once, and dies with the
// approval.
const prefixLinkPath = "/unloq/v1/link/"

// routeLink is GET /unloq/v1/link/{org}/{token}. It holds nothing and
// needs no API key: the token is the credential.
var routeLink = httpd.NewRoute(httpd.Route{Name: "unloq_link", UsesStore: true, Envelope: AppendError})

// notifierListens says whether one of the organization's webhooks takes
// approval.email: without one the link would be sent nowhere and the
// request held for nothing, so it is refused instead.
func (s *Surface) notifierListens(c *reqCtx) bool {
	hooks, _, err := s.db.Webhooks(c.org.ID, store.MaxWebhooksPerOrg, "")
	if err != nil {
		return c.StoreFailed(err)
	}
	for i := range hooks {
		if hooks[i].Events&store.EventApprovalEmail != 0 {
			return true
		}
	}
	return c.fail(outNoNotifier)
}

// createEmailApproval issues c.appr's link token and stores the approval
// with its approval.email event, the link URL made from the host the
// backend called: the server's address as its clients know it.
func (s *Surface) createEmailApproval(c *reqCtx, admit func(*approval.UserState, *approval.Admission) error) error {
	secret, err := approval.IssueLinkToken(&c.appr, rand.Reader)
	if err != nil {
		return err
	}
	scheme := "http://"
	if c.RC.IsTLS() {
		scheme = "https://"
	}
	u := make([]byte, 0, 128)
	u = append(u, scheme...)
	u = append(u, c.RC.Host()...)
	u = append(u, prefixLinkPath...)
	u = append(u, c.org.ID.String()...)
	u = append(u, '/')
	u = appendToken(u, c.appr.ID, secret)
	return s.db.CreateEmailApproval(c.org.ID, &c.appr, store.EmailLink{To: c.user.Email, URL: string(u)}, admit)
}

// openLink answers GET /unloq/v1/link/{org}/{token}: the approval is
// approved and its held authenticate woken. Any link that does not approve
// (malformed, unknown, of another organization, wrong, used, expired) is
// the same 404, so that a link says nothing about others.
func (s *Surface) openLink(c *reqCtx, param []byte) {
	orgPart, tok, ok := bytes.Cut(param, []byte{'/'})
	if !ok {
		c.fail(outLinkBad)
		return
	}
	org, err := store.ParseOrgID(string(orgPart))
	if err != nil {
		c.fail(outLinkBad)
		return
	}
	id, secret, ok := splitToken(string(tok))
	if !ok {
		c.fail(outLinkBad)
		return
	}
	now := s.now()
	eff, err := s.db.UpdateApproval(org, id, &c.appr, &c.state,
		func(a *approval.Approval, u *approval.UserState) (approval.Effect, error) {
			return approval.DecideLink(a, u, secret, now)
		})
	switch {
	case err == nil:
	case errors.Is(err, approval.ErrLocked):
		c.fail(outLocked)
		c.RetryAt(eff.LockedUntil, now)
		return
	case errors.Is(err, store.ErrNotFound), isLinkRefusal(err):
		c.fail(outLinkBad)
		return
	default:
		c.StoreFailed(err)
		return
	}
	hub := s.core.Hub()
	hub.Publish(httpd.TopicKey(httpd.TopicApproval, org.String(), id))
	hub.Publish(httpd.TopicKey(httpd.TopicUserApprovals, org.String(), c.appr.UserID))
	c.Status = fasthttp.StatusOK
	c.Out = append(c.Out[:0], `{"type":"api.application.approval.link","result":{"approval_id":"`...)
	c.Out = append(c.Out, id...)
	c.Out = append(c.Out, `","status":"approved"}}`...)
}

// isLinkRefusal says whether DecideLink refused the link itself rather
// than the store failing: another method, no longer pending, no match.
func isLinkRefusal(err error) bool {
	return errors.Is(err, approval.ErrTokenWrong) || errors.Is(err, approval.ErrWrongMethod) ||
		errors.Is(err, approval.ErrNotPending) || errors.Is(err, approval.ErrExpired)
}
