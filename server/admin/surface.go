// Package admin is the operators' API, /admin/v1: an organization's users,
// their activation codes and devices, and its configuration (approval
// rules and settings, the validate policy, API keys, client-certificate
// bindings), authenticated by an API key of the admin scope
// (Authorization: Bearer). JSON in and out, errors in the
// server's default envelope (the native one), every body checked in full
// by shape before anything is stored, every lookup scoped by the key's
// organization. It is one surface over the core (server/httpd), the
// compiled organizations (server/tenant) and the store.
package admin

import (
	"bytes"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/countersign/countersign/server/httpd"
	"github.com/countersign/countersign/server/tenant"
	"github.com/countersign/countersign/store"
)

// Deps is what the admin surface needs: the core it answers through, the
// store it manages users in, the credentials cache its admin keys resolve
// through, and the clock locks are judged by. The caller owns them all.
type Deps struct {
	Core *httpd.Server
	DB   *store.DB
	Orgs *tenant.Cache
	Now  func() time.Time
	// Sealer seals webhook secrets; nil refuses webhook creation.
	Sealer *store.Sealer
	// AppendDecision renders a stored decision as the native surface's
	// GET /v1/decisions/{id} does (native.AppendDecision): the record's
	// format is that surface's, and the surfaces do not import each other.
	// Nil answers the decisions list 500.
	AppendDecision func(dst []byte, d *store.Decision) ([]byte, error)
}

// Surface serves the admin routes. It is safe for concurrent use.
type Surface struct {
	core *httpd.Server
	db   *store.DB
	orgs *tenant.Cache
	now  func() time.Time

	sealer         *store.Sealer
	appendDecision func(dst []byte, d *store.Decision) ([]byte, error)
	pool           sync.Pool // *reqCtx
}

// New builds the admin surface.
func New(d Deps) *Surface {
	s := &Surface{core: d.Core, db: d.DB, orgs: d.Orgs, now: d.Now, sealer: d.Sealer, appendDecision: d.AppendDecision}
	s.pool.New = func() any { return new(reqCtx) }
	return s
}

// op is one operation of the admin API: a resource and a method.
type op uint8

const (
	opNone op = iota
	opCreateUser
	opListUsers
	opGetUser
	opPatchUser
	opDeleteUser
	opUnlockUser
	opCreateActivationCode
	opListDevices
	opRevokeDevice
	opCreateWebhook
	opListWebhooks
	opGetWebhook
	opDeleteWebhook
	opListDeliveries
	opGetRules
	opPutRules
	opGetSettings
	opPutSettings
	opGetPolicy
	opPutPolicy
	opCreateKey
	opListKeys
	opRevokeKey
	opGetCerts
	opPutCerts
	opListApprovals
	opGetApproval
	opListDecisions
)

// endpoint is a method a resource takes and the operation it names.
type endpoint struct {
	method string
	op     op
}

// resource is one path of the admin API with the methods it takes. The
// core's route (httpd.Route) names the path, for its body limit and its
// metrics; the method is chosen here (admit), since one path takes several.
type resource struct {
	route     *httpd.Route
	allow     string // the Allow header of a 405
	endpoints []endpoint
}

// newResource registers the route of a resource. Every admin route reads
// or writes the store; no body is larger than LimitSmall (a user is four
// short strings). The envelope is the server's default, the native one.
func newResource(name string, eps ...endpoint) *resource {
	return newResourceLimit(name, httpd.LimitSmall, eps...)
}

// newResourceLimit is newResource for a resource whose bodies may be
// larger (a configuration document).
func newResourceLimit(name string, limit int, eps ...endpoint) *resource {
	allow := ""
	for i, e := range eps {
		if i > 0 {
			allow += ", "
		}
		allow += e.method
	}
	r := httpd.NewRoute(httpd.Route{Name: name, Method: eps[0].method, BodyLimit: limit, UsesStore: true})
	return &resource{route: r, allow: allow, endpoints: eps}
}

// The admin resources.
var (
	resUsers = newResource("admin_users",
		endpoint{fasthttp.MethodPost, opCreateUser}, endpoint{fasthttp.MethodGet, opListUsers})
	resUser = newResource("admin_user",
		endpoint{fasthttp.MethodGet, opGetUser}, endpoint{fasthttp.MethodPatch, opPatchUser}, endpoint{fasthttp.MethodDelete, opDeleteUser})
	resUnlock          = newResource("admin_user_unlock", endpoint{fasthttp.MethodPost, opUnlockUser})
	resActivationCodes = newResource("admin_activation_codes", endpoint{fasthttp.MethodPost, opCreateActivationCode})
	resUserDevices     = newResource("admin_user_devices", endpoint{fasthttp.MethodGet, opListDevices})
	resDevice          = newResource("admin_device", endpoint{fasthttp.MethodDelete, opRevokeDevice})
	resWebhooks        = newResource("admin_webhooks",
		endpoint{fasthttp.MethodPost, opCreateWebhook}, endpoint{fasthttp.MethodGet, opListWebhooks})
	resWebhook = newResource("admin_webhook",
		endpoint{fasthttp.MethodGet, opGetWebhook}, endpoint{fasthttp.MethodDelete, opDeleteWebhook})
	resDeliveries = newResource("admin_webhook_deliveries", endpoint{fasthttp.MethodGet, opListDeliveries})

	resRules = newResourceLimit("admin_rules", limitDocument,
		endpoint{fasthttp.MethodGet, opGetRules}, endpoint{fasthttp.MethodPut, opPutRules})
	resSettings = newResourceLimit("admin_settings", limitDocument,
		endpoint{fasthttp.MethodGet, opGetSettings}, endpoint{fasthttp.MethodPut, opPutSettings})
	resPolicy = newResourceLimit("admin_policy", limitDocument,
		endpoint{fasthttp.MethodGet, opGetPolicy}, endpoint{fasthttp.MethodPut, opPutPolicy})
	resKeys = newResource("admin_keys",
		endpoint{fasthttp.MethodPost, opCreateKey}, endpoint{fasthttp.MethodGet, opListKeys})
	resKey   = newResource("admin_key", endpoint{fasthttp.MethodDelete, opRevokeKey})
	resCerts = newResourceLimit("admin_client_certs", httpd.LimitValidate,
		endpoint{fasthttp.MethodGet, opGetCerts}, endpoint{fasthttp.MethodPut, opPutCerts})

	resApprovals = newResource("admin_approvals", endpoint{fasthttp.MethodGet, opListApprovals})
	resApproval  = newResource("admin_approval", endpoint{fasthttp.MethodGet, opGetApproval})
	resDecisions = newResource("admin_decisions", endpoint{fasthttp.MethodGet, opListDecisions})

	resources = []*resource{resUsers, resUser, resUnlock, resActivationCodes, resUserDevices, resDevice,
		resRules, resSettings, resPolicy, resKeys, resKey, resCerts, resWebhooks, resWebhook, resDeliveries,
		resApprovals, resApproval, resDecisions}
)

const (
	pathUsers     = "/admin/v1/users"
	prefixUsers   = "/admin/v1/users/"
	prefixDevices = "/admin/v1/devices/"
	suffixUnlock  = "/unlock"
	suffixCodes   = "/activation-codes"
	suffixDevices = "/devices"

	pathWebhooks     = "/admin/v1/webhooks"
	prefixWebhooks   = "/admin/v1/webhooks/"
	suffixDeliveries = "/deliveries"
	pathRules        = "/admin/v1/rules"
	pathSettings     = "/admin/v1/settings"
	pathPolicy       = "/admin/v1/policy"
	pathKeys         = "/admin/v1/keys"
	prefixKeys       = "/admin/v1/keys/"
	pathCerts        = "/admin/v1/client-certs"
	pathApprovals    = "/admin/v1/approvals"
	prefixApprovals  = "/admin/v1/approvals/"
	pathDecisions    = "/admin/v1/decisions"
)

// Route maps a path to its admin route and path parameter (a user id or a
// device id).
func (s *Surface) Route(path []byte) (*httpd.Route, []byte) {
	switch string(path) {
	case pathUsers:
		return resUsers.route, nil
	case pathRules:
		return resRules.route, nil
	case pathSettings:
		return resSettings.route, nil
	case pathPolicy:
		return resPolicy.route, nil
	case pathKeys:
		return resKeys.route, nil
	case pathCerts:
		return resCerts.route, nil
	case pathApprovals:
		return resApprovals.route, nil
	case pathDecisions:
		return resDecisions.route, nil
	}
	if id, ok := bytes.CutPrefix(path, []byte(prefixApprovals)); ok && len(id) > 0 && bytes.IndexByte(id, '/') < 0 {
		return resApproval.route, id
	}
	if id, ok := bytes.CutPrefix(path, []byte(prefixKeys)); ok && len(id) > 0 && bytes.IndexByte(id, '/') < 0 {
		return resKey.route, id
	}
	if rest, ok := bytes.CutPrefix(path, []byte(prefixUsers)); ok && len(rest) > 0 {
		i := bytes.IndexByte(rest, '/')
		if i < 0 {
			return resUser.route, rest
		}
		id, sub := rest[:i], string(rest[i:])
		switch {
		case i == 0:
		case sub == suffixUnlock:
			return resUnlock.route, id
		case sub == suffixCodes:
			return resActivationCodes.route, id
		case sub == suffixDevices:
			return resUserDevices.route, id
		}
		return httpd.RouteUnknown, nil
	}
	if rest, ok := bytes.CutPrefix(path, []byte(prefixDevices)); ok && len(rest) > 0 && bytes.IndexByte(rest, '/') < 0 {
		return resDevice.route, rest
	}
	if string(path) == pathWebhooks {
		return resWebhooks.route, nil
	}
	if rest, ok := bytes.CutPrefix(path, []byte(prefixWebhooks)); ok && len(rest) > 0 {
		switch i := bytes.IndexByte(rest, '/'); {
		case i < 0:
			return resWebhook.route, rest
		case i > 0 && string(rest[i:]) == suffixDeliveries:
			return resDeliveries.route, rest[:i]
		}
	}
	return httpd.RouteUnknown, nil
}

// Serve answers one request of route r in a pooled context.
func (s *Surface) Serve(rc *fasthttp.RequestCtx, r *httpd.Route, param []byte) {
	c := s.pool.Get().(*reqCtx)
	c.Start(s.core, rc, r)
	if o := c.admit(); o != opNone && s.authAdminKey(c) {
		s.serve(c, o, param)
	}
	c.Send()
	c.release()
	s.pool.Put(c)
}

func (s *Surface) serve(c *reqCtx, o op, param []byte) {
	switch o {
	case opCreateUser:
		s.createUser(c)
	case opListUsers:
		s.listUsers(c)
	case opGetUser:
		s.getUser(c, string(param))
	case opPatchUser:
		s.patchUser(c, string(param))
	case opDeleteUser:
		s.deleteUser(c, string(param))
	case opUnlockUser:
		s.unlockUser(c, string(param))
	case opCreateActivationCode:
		s.createActivationCode(c, string(param))
	case opListDevices:
		s.listDevices(c, string(param))
	case opRevokeDevice:
		s.revokeDevice(c, string(param))
	case opCreateWebhook:
		s.createWebhook(c)
	case opListWebhooks:
		s.listWebhooks(c)
	case opGetWebhook:
		s.getWebhook(c, string(param))
	case opDeleteWebhook:
		s.deleteWebhook(c, string(param))
	case opListDeliveries:
		s.listDeliveries(c, string(param))
	case opGetRules:
		s.getRules(c)
	case opPutRules:
		s.putRules(c)
	case opGetSettings:
		s.getSettings(c)
	case opPutSettings:
		s.putSettings(c)
	case opGetPolicy:
		s.getPolicy(c)
	case opPutPolicy:
		s.putPolicy(c)
	case opCreateKey:
		s.createKey(c)
	case opListKeys:
		s.listKeys(c)
	case opRevokeKey:
		s.revokeKey(c, string(param))
	case opGetCerts:
		s.getCerts(c)
	case opPutCerts:
		s.putCerts(c)
	case opListApprovals:
		s.listApprovals(c)
	case opGetApproval:
		s.getApproval(c, string(param))
	case opListDecisions:
		s.listDecisions(c)
	}
}

// admit is the core's Admit for a path that takes several methods: the
// operation the request's method names on the route's resource, or opNone
// after answering 404 (no route), 405 with Allow (a method the resource
// does not take) or 503 (the store has failed).
func (c *reqCtx) admit() op {
	var res *resource
	for _, r := range resources {
		if r.route == c.Route {
			res = r
		}
	}
	if res == nil {
		c.Admit() // route_not_found
		return opNone
	}
	m := c.RC.Method()
	if c.RC.IsHead() {
		m = []byte(fasthttp.MethodGet)
	}
	for _, e := range res.endpoints {
		if string(m) != e.method {
			continue
		}
		if c.Srv.StoreDead() {
			// What the store holds in memory may include writes that never
			// became durable: answer nothing from it (see httpd.Ctx.Admit).
			c.Fail(c.Srv.StoreError(), nil)
			return opNone
		}
		return e.op
	}
	c.RC.Response.Header.Set(fasthttp.HeaderAllow, res.allow)
	c.Fail(httpd.ErrMethodNotAllowed, nil)
	return opNone
}
