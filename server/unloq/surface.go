// Package unloq is the UNLOQ-compatible surface, /unloq/v1: UNLOQ's
// server-to-server flow, in which the backend's POST /authenticate is held
// until the user approves or denies on the phone, or the wait runs out. A
// customer of UNLOQ moves by setting the published Node.js client's gateway
// to http://HOST/unloq; request bodies (JSON or form-encoded), the answers,
// the streamed events of ?events=true and the error envelope
// {"error":{"code","ns","message","status"}} are UNLOQ's. It is one surface
// over the approval engine, the core (server/httpd, whose hub wakes the held
// requests) and the store.
package unloq

import (
	"bytes"
	"log/slog"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/countersign/countersign/server/httpd"
	"github.com/countersign/countersign/server/tenant"
	"github.com/countersign/countersign/store"
)

// Deps is what the UNLOQ surface needs: the core it answers through, the
// store, the credential cache, and the clock approvals are judged by. The
// caller owns them all.
type Deps struct {
	Core *httpd.Server
	DB   *store.DB
	Orgs *tenant.Cache
	Now  func() time.Time
	// PingInterval is how often an event stream is sent a bare "\n" so
	// that proxies and the client keep it open; zero is DefaultPingInterval.
	PingInterval time.Duration
	// PublicURL, without a trailing slash, is where users' browsers reach
	// the server: the EMAIL method's links start with it. Empty: with the
	// scheme and Host of the backend's request.
	PublicURL string
}

// DefaultPingInterval is the event stream's ping period: well inside the
// idle timeouts of common proxies (30 s and more).
const DefaultPingInterval = 5 * time.Second

// Surface serves the /unloq/v1 routes. It is safe for concurrent use.
type Surface struct {
	core *httpd.Server
	db   *store.DB
	orgs *tenant.Cache
	now  func() time.Time
	log  *slog.Logger
	ping time.Duration
	base string // Deps.PublicURL

	pool sync.Pool // *reqCtx
}

// New builds the UNLOQ surface.
func New(d Deps) *Surface {
	s := &Surface{core: d.Core, db: d.DB, orgs: d.Orgs, now: d.Now, log: d.Core.Log(), ping: d.PingInterval, base: d.PublicURL}
	if s.ping <= 0 {
		s.ping = DefaultPingInterval
	}
	s.pool.New = func() any { return new(reqCtx) }
	return s
}

// maxHold bounds a held authenticate: the longest unloqWaitSeconds (40 s)
// and a little for the store's write of the answer.
const maxHold = 45 * time.Second

// limitAuthBody fits an authenticate with the $variables of a message
// (approval.MaxMessageLen) and room to spare.
const limitAuthBody = 16 << 10

// The UNLOQ routes. Every error of each, the core's included, is written in
// UNLOQ's envelope.
var (
	routeAuthenticate = httpd.NewRoute(httpd.Route{Name: "unloq_authenticate", Method: fasthttp.MethodPost,
		BodyLimit: limitAuthBody, UsesStore: true, Holds: true, MaxHold: maxHold, Envelope: AppendError})
	routeToken = httpd.NewRoute(httpd.Route{Name: "unloq_token", Method: fasthttp.MethodPost,
		UsesStore: true, Envelope: AppendError})
	routeTokenSession = httpd.NewRoute(httpd.Route{Name: "unloq_token_session", Method: fasthttp.MethodPost,
		UsesStore: true, Envelope: AppendError})
	routeApprovals = httpd.NewRoute(httpd.Route{Name: "unloq_approvals", UsesStore: true, Envelope: AppendError})
	routeApproval  = httpd.NewRoute(httpd.Route{Name: "unloq_approval", UsesStore: true, Envelope: AppendError})
	// routeUnknown is a path under /unloq/v1 that names no route: answered
	// 404 in UNLOQ's envelope, not the server's default one.
	routeUnknown = httpd.NewRoute(httpd.Route{Name: "unloq_unknown", BodyLimit: httpd.LimitMax, Envelope: AppendError})
)

const (
	pathAuthenticate   = "/unloq/v1/authenticate"
	pathToken          = "/unloq/v1/token"
	pathTokenSession   = "/unloq/v1/token/session"
	pathApprovals      = "/unloq/v1/approvals"
	prefixApprovalPath = "/unloq/v1/approvals/"
)

// Route maps a path to its UNLOQ route and path parameter (an approval id).
func (s *Surface) Route(path []byte) (*httpd.Route, []byte) {
	switch string(path) {
	case pathAuthenticate:
		return routeAuthenticate, nil
	case pathToken:
		return routeToken, nil
	case pathTokenSession:
		return routeTokenSession, nil
	case pathApprovals:
		return routeApprovals, nil
	}
	if tok, ok := bytes.CutPrefix(path, []byte(prefixLinkPath)); ok && len(tok) > 0 {
		return routeLink, tok
	}
	if id, ok := bytes.CutPrefix(path, []byte(prefixApprovalPath)); ok && len(id) > 0 && bytes.IndexByte(id, '/') < 0 {
		return routeApproval, id
	}
	return routeUnknown, nil
}

// Serve answers one request of route r in a pooled context. An
// authenticate that streams its events keeps the context until the stream
// ends (stream.go); every other request gives it back here.
func (s *Surface) Serve(rc *fasthttp.RequestCtx, r *httpd.Route, param []byte) {
	if r == routeLink && string(rc.Method()) == fasthttp.MethodPost {
		r = routeLinkApprove // the link's page and its button share a path
	}
	c := s.pool.Get().(*reqCtx)
	c.Start(s.core, rc, r)
	streamed := false
	switch {
	case r == routeUnknown:
		c.Fail(httpd.ErrRouteNotFound, nil)
	case r == routeLink || r == routeLinkApprove:
		// The link is its own credential: no API key is asked for.
		if !c.Admit() {
			break
		}
		if r == routeLink {
			s.showLink(c, param)
		} else {
			s.approveLink(c, param)
		}
	case c.Admit() && s.auth(c):
		switch r {
		case routeAuthenticate:
			streamed = s.authenticate(c)
		case routeToken:
			s.token(c)
		case routeTokenSession:
			s.tokenSession(c)
		case routeApprovals:
			s.listApprovals(c)
		case routeApproval:
			s.getApproval(c, param)
		}
	}
	if streamed {
		// The stream writer runs in a goroutine of its own from the
		// moment it is set (fasthttp.NewStreamReader), and may already
		// have released and pooled c: c is not touched again here.
		return
	}
	c.Send()
	s.put(c)
}

// put releases c and gives it back to the pool.
func (s *Surface) put(c *reqCtx) {
	c.release()
	s.pool.Put(c)
}
