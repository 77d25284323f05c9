package unloq

import (
	"time"

	"github.com/countersign/countersign/engine/approval"
	"github.com/countersign/countersign/server/httpd"
	"github.com/countersign/countersign/store"
)

// reqCtx is the UNLOQ surface's pooled per-request context: the core's
// (httpd.Ctx) and the request read from the body, the organization and
// user it names, and the approval being held. A streamed authenticate
// keeps it, and its waiter, until the stream ends. Nothing in it outlives
// the request: the request's strings refer into the body or the form
// arguments, and the store copies what it keeps.
type reqCtx struct {
	httpd.Ctx

	org  store.Org
	user store.User
	req  authRequest

	appr  approval.Approval
	state approval.UserState
	list  []approval.Approval
	seed  []byte // the user's TOTP seed while a code is checked; cleared after

	// resultSecret is the result token drawn with the approval
	// (approval.IssueResultTokenAhead), answered once it is approved.
	resultSecret string

	// The held authenticate: its waiter (nil when not held) and until
	// when it is held.
	waiter   *httpd.Waiter
	deadline time.Time
	ev       []byte // the final event of a stream
}

// release makes c ready for the pool, dropping every reference into the
// body and closing the waiter.
func (c *reqCtx) release() {
	if c.waiter != nil {
		c.waiter.Close()
		c.waiter = nil
	}
	c.Ctx.Release()
	c.org = store.Org{}
	c.user = store.User{}
	c.req.reset()
	c.state.Recent = c.state.Recent[:0]
	c.list = c.list[:0]
	c.resultSecret = ""
	c.ev = httpd.Trim(c.ev)
}
