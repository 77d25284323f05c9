package admin

import (
	"github.com/countersign/countersign/engine/approval"
	"github.com/countersign/countersign/server/httpd"
	"github.com/countersign/countersign/store"
)

// reqCtx is the admin surface's pooled per-request context: the core's
// (httpd.Ctx: buffers, body codecs, JSON checks) and the admin routes'
// request bodies and scratch, reset by truncation. As everywhere, nothing
// in it outlives the request: decoded strings refer into the body, and the
// store copies what it keeps.
type reqCtx struct {
	httpd.Ctx

	org store.Org // the admin key's organization
	key []byte    // the admin key, in the request's header

	createReq createUserRequest
	patchReq  patchUserRequest
	hookReq   createWebhookRequest
	state     approval.UserState
	appr      approval.Approval
}

// release makes c ready for the pool, dropping every reference into the
// body.
func (c *reqCtx) release() {
	c.Ctx.Release()
	c.org = store.Org{}
	c.key = nil
	c.createReq = createUserRequest{}
	c.patchReq = patchUserRequest{}
	c.hookReq = createWebhookRequest{}
	c.state.Recent = c.state.Recent[:0]
	c.appr.Reset()
}
