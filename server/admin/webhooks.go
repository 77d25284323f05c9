package admin

import (
	"errors"
	"strconv"

	"github.com/valyala/fasthttp"

	"github.com/countersign/countersign/server/httpd"
	"github.com/countersign/countersign/server/jsonwire"
	"github.com/countersign/countersign/server/webhook"
	"github.com/countersign/countersign/store"
)

type createWebhookRequest struct {
	URL    string   `json:"url"`
	Events []string `json:"events"`
	Format string   `json:"format"`
}

var shapeCreateWebhook = &jsonwire.Shape{Kind: jsonwire.KindObject, Desc: "an object", Fields: []jsonwire.FieldShape{
	{Name: "url", Shape: jsonwire.ShapeString, Required: true},
	{Name: "events", Required: true, Shape: &jsonwire.Shape{Kind: jsonwire.KindArray, Elem: jsonwire.ShapeString,
		MaxItems: 8, Desc: "an array of event types"}},
	{Name: "format", Shape: jsonwire.ShapeString},
}}

const (
	msgWebhookURL    = "url must be an absolute http:// or https:// URL with a host, at most 2048 bytes, without user:password"
	msgWebhookEvents = "events must name one or more of approval.created, approval.decided, approval.email, decision.created"
	msgWebhookFormat = `format, when given, must be "standard" or "unloq"`
)

// createWebhook answers POST /admin/v1/webhooks {"url","events","format"}:
// 201 {"id","secret"} and the subscription's fields, the secret shown this
// once (the store keeps it sealed under the master key).
func (s *Surface) createWebhook(c *reqCtx) {
	if !c.ReadBody(httpd.LimitSmall) {
		return
	}
	r := &c.hookReq
	*r = createWebhookRequest{Events: r.Events[:0]}
	if !c.Decode(shapeCreateWebhook, r) {
		return
	}
	if webhook.CheckURL(r.URL) != nil {
		c.Failf(httpd.ErrInvalidField, msgWebhookURL)
		return
	}
	var events store.WebhookEvents
	for _, name := range r.Events {
		e, err := store.ParseWebhookEvent(name)
		if err != nil {
			c.Failf(httpd.ErrInvalidField, msgWebhookEvents)
			return
		}
		events |= e
	}
	if events == 0 {
		c.Failf(httpd.ErrInvalidField, msgWebhookEvents)
		return
	}
	format, err := store.ParseWebhookFormat(r.Format)
	if err != nil {
		c.Failf(httpd.ErrInvalidField, msgWebhookFormat)
		return
	}
	if s.sealer == nil {
		// A server started without the master key cannot keep a secret.
		c.Srv.Log().Error("webhook refused: the server has no master key to seal its secret")
		c.Fail(httpd.ErrInternal, nil)
		return
	}
	secret := webhook.NewSecret(format)
	w, err := s.db.CreateWebhook(c.org.ID, store.Webhook{URL: r.URL, Events: events, Format: format}, []byte(secret), s.sealer)
	if err != nil {
		s.webhookFailed(c, err)
		return
	}
	c.Status = fasthttp.StatusCreated
	c.Out = appendWebhook(c.Out[:0], &w, secret)
}

// getWebhook answers GET /admin/v1/webhooks/{id}, without its secret.
func (s *Surface) getWebhook(c *reqCtx, id string) {
	if !store.ValidWebhookID(id) {
		c.Fail(errWebhookNotFound, nil)
		return
	}
	w, err := s.db.Webhook(c.org.ID, id)
	if err != nil {
		s.webhookFailed(c, err)
		return
	}
	c.Status = fasthttp.StatusOK
	c.Out = appendWebhook(c.Out[:0], &w, "")
}

// deleteWebhook answers DELETE /admin/v1/webhooks/{id}: 204; its delivery
// log goes with it, and its deliveries still owed are dropped.
func (s *Surface) deleteWebhook(c *reqCtx, id string) {
	if !store.ValidWebhookID(id) {
		c.Fail(errWebhookNotFound, nil)
		return
	}
	if err := s.db.DeleteWebhook(c.org.ID, id); err != nil {
		s.webhookFailed(c, err)
		return
	}
	c.Status = fasthttp.StatusNoContent
}

// listWebhooks answers GET /admin/v1/webhooks?limit=&cursor=.
func (s *Surface) listWebhooks(c *reqCtx) {
	limit, ok := c.pageLimit()
	if !ok {
		return
	}
	hooks, next, err := s.db.Webhooks(c.org.ID, limit, string(c.RC.QueryArgs().Peek("cursor")))
	if err != nil {
		s.webhookFailed(c, err)
		return
	}
	c.Status = fasthttp.StatusOK
	c.Out = append(c.Out[:0], `{"items":[`...)
	for i := range hooks {
		if i > 0 {
			c.Out = append(c.Out, ',')
		}
		c.Out = appendWebhook(c.Out, &hooks[i], "")
	}
	c.Out = appendNext(c.Out, next)
}

// listDeliveries answers GET /admin/v1/webhooks/{id}/deliveries?limit=&cursor=:
// the subscription's delivery log, newest attempt first:
// {"items":[{"eventID","event","attempt","at","outcome","status","error",
// "latencyMs"}],"next"}.
func (s *Surface) listDeliveries(c *reqCtx, id string) {
	limit, ok := c.pageLimit()
	if !ok {
		return
	}
	if !store.ValidWebhookID(id) {
		c.Fail(errWebhookNotFound, nil)
		return
	}
	log, next, err := s.db.Deliveries(c.org.ID, id, limit, string(c.RC.QueryArgs().Peek("cursor")))
	if err != nil {
		s.webhookFailed(c, err)
		return
	}
	c.Status = fasthttp.StatusOK
	c.Out = append(c.Out[:0], `{"items":[`...)
	for i := range log {
		d := &log[i]
		if i > 0 {
			c.Out = append(c.Out, ',')
		}
		c.Out = append(c.Out, `{"eventID":`...)
		c.Out = jsonwire.AppendString(c.Out, d.EventID)
		c.Out = append(c.Out, `,"event":`...)
		c.Out = jsonwire.AppendString(c.Out, d.Event.String())
		c.Out = append(c.Out, `,"attempt":`...)
		c.Out = strconv.AppendInt(c.Out, int64(d.Attempt), 10)
		c.Out = append(c.Out, `,"at":`...)
		c.Out = strconv.AppendInt(c.Out, d.At, 10)
		c.Out = append(c.Out, `,"outcome":"`...)
		c.Out = append(c.Out, d.Outcome.String()...)
		c.Out = append(c.Out, `","status":`...)
		c.Out = strconv.AppendInt(c.Out, int64(d.Status), 10)
		c.Out = append(c.Out, `,"error":`...)
		c.Out = jsonwire.AppendString(c.Out, d.Error)
		c.Out = append(c.Out, `,"latencyMs":`...)
		c.Out = jsonwire.AppendFloat(c.Out, float64(d.Latency.Microseconds())/1000, 64)
		c.Out = append(c.Out, '}')
	}
	c.Out = appendNext(c.Out, next)
}

// pageLimit reads ?limit= of a list (store.DefaultPageLimit when absent),
// answering 400 naming it when it is not 1 to store.MaxPageLimit.
func (c *reqCtx) pageLimit() (int, bool) {
	v := c.RC.QueryArgs().Peek("limit")
	if v == nil {
		return store.DefaultPageLimit, true
	}
	n, err := strconv.Atoi(string(v))
	if err != nil || n < 1 || n > store.MaxPageLimit {
		return 0, c.Failf(httpd.ErrInvalidField, msgLimit)
	}
	return n, true
}

// appendNext closes a list page: `],"next":"<cursor>"}`.
func appendNext(dst []byte, next string) []byte {
	dst = append(dst, `],"next":`...)
	dst = jsonwire.AppendString(dst, next)
	return append(dst, '}')
}

// webhookFailed answers a store error of a webhook operation.
func (s *Surface) webhookFailed(c *reqCtx, err error) {
	switch {
	case errors.Is(err, store.ErrNotFound):
		c.Fail(errWebhookNotFound, nil)
	case errors.Is(err, store.ErrWebhookLimit):
		c.Fail(errWebhookLimit, nil)
	case errors.Is(err, store.ErrCursor):
		c.Failf(httpd.ErrInvalidField, msgCursor)
	default:
		c.StoreFailed(err)
	}
}

// appendWebhook appends the subscription's JSON:
// {"id","secret"?,"url","events","format","createdAt"}; the secret only
// in the answer that creates it.
func appendWebhook(dst []byte, w *store.Webhook, secret string) []byte {
	dst = append(dst, `{"id":`...)
	dst = jsonwire.AppendString(dst, w.ID)
	if secret != "" {
		dst = append(dst, `,"secret":`...)
		dst = jsonwire.AppendString(dst, secret)
	}
	dst = append(dst, `,"url":`...)
	dst = jsonwire.AppendString(dst, w.URL)
	dst = append(dst, `,"events":[`...)
	for i, n := range w.Events.Names() {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = jsonwire.AppendString(dst, n)
	}
	dst = append(dst, `],"format":"`...)
	dst = append(dst, w.Format.String()...)
	dst = append(dst, `","createdAt":`...)
	dst = strconv.AppendInt(dst, w.CreatedAt, 10)
	return append(dst, '}')
}
