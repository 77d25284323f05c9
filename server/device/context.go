package device

import (
	"github.com/countersign/countersign/engine/approval"
	"github.com/countersign/countersign/engine/rules"
	"github.com/countersign/countersign/server/httpd"
	"github.com/countersign/countersign/store"
)

// reqCtx is the device surface's pooled per-request context: the core's
// (httpd.Ctx: buffers, body codecs, JSON checks) and the device routes'
// request bodies, the authenticated device, and the scratch the answer and
// the poll read approvals into, reset by truncation. Nothing in it
// outlives the request: decoded strings refer into the body, the device's
// strings into its own buffer, and the store copies what it keeps.
type reqCtx struct {
	httpd.Ctx

	dev store.Device // the device the token names; DeviceByToken reuses its buffer

	activateReq activateRequest
	answerReq   answerRequest

	pending []approval.Approval // the poll's
	appr    approval.Approval   // the answer's
	state   approval.UserState
	res     rules.Result
	in      rules.Input
	scratch []byte // the rules input's byte views of the device's strings
}

// release makes c ready for the pool, dropping every reference into the
// body.
func (c *reqCtx) release() {
	c.Ctx.Release()
	c.activateReq = activateRequest{}
	c.answerReq = answerRequest{}
	c.in = rules.Input{}
	c.scratch = httpd.Trim(c.scratch)
	c.state.Recent = c.state.Recent[:0]
}
