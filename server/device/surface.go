// Package device is the authenticator app's API, /v1/device: a phone
// activates itself with an operator's one-time activation code and its
// Ed25519 key, then long-polls its user's pending approvals and answers
// each with a signed decision. The app authenticates with the device token
// activation handed it (Authorization: Bearer csd_...); every lookup is
// scoped by the device's organization and user, so a device never sees or
// answers another user's approval. Errors are in the server's default
// envelope (the native one). It is one surface over the core
// (server/httpd, whose hub holds the long polls) and the store.
package device

import (
	"bytes"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/countersign/countersign/server/httpd"
	"github.com/countersign/countersign/server/tenant"
	"github.com/countersign/countersign/store"
)

// Deps is what the device surface needs: the core it answers through (and
// whose hub holds the long polls), the store, and the clock approvals are
// judged by. The caller owns them all.
type Deps struct {
	Core *httpd.Server
	DB   *store.DB
	Orgs *tenant.Cache
	Now  func() time.Time
}

// Surface serves the device routes. It is safe for concurrent use.
type Surface struct {
	core *httpd.Server
	db   *store.DB
	orgs *tenant.Cache
	now  func() time.Time

	pool sync.Pool // *reqCtx
}

// New builds the device surface.
func New(d Deps) *Surface {
	s := &Surface{core: d.Core, db: d.DB, orgs: d.Orgs, now: d.Now}
	s.pool.New = func() any { return new(reqCtx) }
	return s
}

// MaxHold is the longest a long poll is held: the app asks for 25 s, and a
// little more leaves room for a client that asks for 30.
const MaxHold = 30 * time.Second

// The device routes. Each reads or writes the store; the answer body is a
// few short fields and a signature, well under LimitSmall.
var (
	routeActivate = httpd.NewRoute(httpd.Route{Name: "device_activate", Method: fasthttp.MethodPost,
		BodyLimit: httpd.LimitSmall, UsesStore: true})
	routeApprovals = httpd.NewRoute(httpd.Route{Name: "device_approvals", Method: fasthttp.MethodGet,
		UsesStore: true, Holds: true, MaxHold: MaxHold})
	routeAnswer = httpd.NewRoute(httpd.Route{Name: "device_answer", Method: fasthttp.MethodPost,
		BodyLimit: httpd.LimitSmall, UsesStore: true})
)

const (
	pathActivate    = "/v1/device/activate"
	pathApprovals   = "/v1/device/approvals"
	prefixApprovals = "/v1/device/approvals/"
)

// Route maps a path to its device route and path parameter (an approval
// id, on the answer route).
func (s *Surface) Route(path []byte) (*httpd.Route, []byte) {
	switch string(path) {
	case pathActivate:
		return routeActivate, nil
	case pathApprovals:
		return routeApprovals, nil
	}
	if id, ok := bytes.CutPrefix(path, []byte(prefixApprovals)); ok && len(id) > 0 && bytes.IndexByte(id, '/') < 0 {
		return routeAnswer, id
	}
	return httpd.RouteUnknown, nil
}

// Serve answers one request of route r in a pooled context.
func (s *Surface) Serve(rc *fasthttp.RequestCtx, r *httpd.Route, param []byte) {
	c := s.pool.Get().(*reqCtx)
	c.Start(s.core, rc, r)
	if c.Admit() {
		switch r {
		case routeActivate:
			s.activate(c)
		case routeApprovals:
			if s.authDevice(c) {
				s.poll(c)
			}
		case routeAnswer:
			if s.authDevice(c) {
				s.answer(c, string(param))
			}
		}
	}
	c.Send()
	c.release()
	s.pool.Put(c)
}
