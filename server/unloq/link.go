package unloq

import (
	"bytes"
	"crypto/rand"
	"errors"
	"html"

	"github.com/valyala/fasthttp"

	"github.com/countersign/countersign/engine/approval"
	"github.com/countersign/countersign/server/httpd"
	"github.com/countersign/countersign/store"
)

// The EMAIL method (DESIGN "UNLOQ-compatible surface"): the approval's
// one-time link is delivered as an approval.email webhook event to the
// organization's notifier, which mails it. Opening it (GET) shows what is
// asked with one button; the button (a POST of the same link) approves the
// approval and wakes the held authenticate. Two steps, because mail
// scanners and link previews fetch the links of incoming mail: a GET that
// approved would let them approve for the user. The link is the only
// credential of its routes, so it names everything it needs:
//
//	/unloq/v1/link/{organization id}/{approval id}.{secret}
//
// The approval keeps only the secret's hash (approval.IssueLinkToken); the
// secret is compared in constant time, accepted once, and dies with the
// approval.
const prefixLinkPath = "/unloq/v1/link/"

// routeLink is GET /unloq/v1/link/{org}/{token}, the page, and
// routeLinkApprove the POST of its button. They hold nothing and need no
// API key: the token is the credential.
var (
	routeLink        = httpd.NewRoute(httpd.Route{Name: "unloq_link", UsesStore: true, Envelope: AppendError})
	routeLinkApprove = httpd.NewRoute(httpd.Route{Name: "unloq_link_approve", Method: fasthttp.MethodPost,
		UsesStore: true, Envelope: AppendError})
)

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
// with its approval.email event, the link URL made from the server's
// public URL, else from the host the backend called.
func (s *Surface) createEmailApproval(c *reqCtx, admit func(*approval.UserState, *approval.Admission) error) error {
	secret, err := approval.IssueLinkToken(&c.appr, rand.Reader)
	if err != nil {
		return err
	}
	u := make([]byte, 0, 128)
	if s.base != "" {
		u = append(u, s.base...)
	} else {
		if c.RC.IsTLS() {
			u = append(u, "https://"...)
		} else {
			u = append(u, "http://"...)
		}
		u = append(u, c.RC.Host()...)
	}
	u = append(u, prefixLinkPath...)
	u = append(u, c.org.ID.String()...)
	u = append(u, '/')
	u = appendToken(u, c.appr.ID, secret)
	return s.db.CreateEmailApproval(c.org.ID, &c.appr, store.EmailLink{To: c.user.Email, URL: string(u)}, admit)
}

// parseLink splits the path parameter of a link into its organization,
// approval id and secret; false (answered LINK.INVALID) if malformed.
func (c *reqCtx) parseLink(param []byte) (org store.OrgID, id, secret string, ok bool) {
	orgPart, tok, ok := bytes.Cut(param, []byte{'/'})
	if !ok {
		return org, "", "", c.fail(outLinkBad)
	}
	org, err := store.ParseOrgID(string(orgPart))
	if err != nil {
		return org, "", "", c.fail(outLinkBad)
	}
	if id, secret, ok = splitToken(string(tok)); !ok {
		return org, "", "", c.fail(outLinkBad)
	}
	return org, id, secret, true
}

// showLink answers GET /unloq/v1/link/{org}/{token}: a page with the
// approval's message and one button that approves; nothing changes. A
// link that would not approve is the 404 the button would get.
func (s *Surface) showLink(c *reqCtx, param []byte) {
	org, id, secret, ok := c.parseLink(param)
	if !ok {
		return
	}
	switch err := s.db.Approval(org, id, &c.appr); {
	case errors.Is(err, store.ErrNotFound):
		c.fail(outLinkBad)
		return
	case err != nil:
		c.StoreFailed(err)
		return
	}
	if err := approval.CheckLink(&c.appr, secret, s.now()); err != nil {
		c.fail(outLinkBad)
		return
	}
	c.linkPage(linkAsk, c.appr.Message)
}

// The two pages of a link.
const (
	linkAsk = iota
	linkApproved
)

// linkPage answers an HTML page: the question with its button, or the
// approval done. The page is never cached or framed (a framed button is
// one a hostile page could trick the user into pressing), sends no
// referrer (the link is a credential), and may post only to itself.
func (c *reqCtx) linkPage(page int, message string) {
	h := &c.RC.Response.Header
	h.Set(fasthttp.HeaderCacheControl, "no-store")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'")
	c.Status = fasthttp.StatusOK
	c.ContentType = "text/html; charset=utf-8"
	c.Out = append(c.Out[:0], `<!doctype html><html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">`+
		`<title>Approve the sign-in</title></head><body style="font-family:sans-serif;max-width:32em;margin:2em auto">`...)
	if page == linkAsk {
		c.Out = append(c.Out, `<p>Approve this request?</p><blockquote>`...)
		c.Out = append(c.Out, html.EscapeString(message)...)
		c.Out = append(c.Out, `</blockquote><form method="post"><button type="submit">Approve</button></form>`+
			`<p>If you did not ask for this, close this page: nothing is approved unless you press the button.</p>`...)
	} else {
		c.Out = append(c.Out, `<p>Approved. You can close this page.</p>`...)
	}
	c.Out = append(c.Out, "</body></html>"...)
}

// approveLink answers POST /unloq/v1/link/{org}/{token}, the page's
// button: the approval is approved and its held authenticate woken; the
// answer is the approved page to a browser (Accept: text/html), JSON
// otherwise. Any link that does not approve (malformed, unknown, of another
// organization, wrong, used, expired) is the same 404, so that a link says
// nothing about others.
func (s *Surface) approveLink(c *reqCtx, param []byte) {
	org, id, secret, ok := c.parseLink(param)
	if !ok {
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
	if bytes.Contains(c.RC.Request.Header.Peek(fasthttp.HeaderAccept), []byte("text/html")) {
		c.linkPage(linkApproved, "")
		return
	}
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
