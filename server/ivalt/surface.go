// Package ivalt is countersign's iVALT-compatible surface, /ivalt: the
// calls iVALT's integrators already make (its OpenVPN plugin, its API
// portal, the documented Authentication APIs under /admin/public/api/),
// with iVALT's paths, bodies, status codes, x-api-key header and error
// envelope, so that a client moves to countersign by changing its base URL
// from https://api.ivalt.com to http://HOST/ivalt.
//
// Each request call creates a push approval on the approval engine for the
// user its mobile number names; the authenticator app decides it on
// /v1/device, under the organization's rules; the result calls read the
// user's latest approval (or the one request_id names) and answer 200
// approved, 422 pending, 403 denied, failed or timed out (error.detail
// naming the failed factors in the words iVALT's clients match on), 404
// unknown user. Bodies are read leniently (real clients send extras such as
// requestFrom) and the fields used strictly. It is one surface over the
// core (server/httpd), the compiled organizations (server/tenant), the
// engine and the store.
package ivalt

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

// Deps is what the iVALT surface is built over. The caller owns them all.
// The organizations' compiled rules and approval settings come from Orgs
// (tenant.Approvals), as for the other approval surfaces.
type Deps struct {
	Core *httpd.Server
	DB   *store.DB
	Orgs *tenant.Cache
	Now  func() time.Time
}

// Surface serves the /ivalt routes. It is safe for concurrent use.
type Surface struct {
	core *httpd.Server
	db   *store.DB
	orgs *tenant.Cache
	log  *slog.Logger
	now  func() time.Time

	tokens authTokens
	pool   sync.Pool // *reqCtx
}

// New builds the iVALT surface.
func New(d Deps) *Surface {
	s := &Surface{core: d.Core, db: d.DB, orgs: d.Orgs, log: d.Core.Log(), now: d.Now}
	if s.now == nil {
		s.now = time.Now
	}
	envelopeNow.Store(&s.now)
	s.tokens.init()
	s.pool.New = func() any { return new(reqCtx) }
	return s
}

// limitBody bounds every iVALT body: a few short fields, and the extras
// clients send beside them.
const limitBody = httpd.LimitSmall

// ivaltRoute registers an iVALT route: every one is a POST that reads or
// writes the store, answered in iVALT's envelope.
func ivaltRoute(name string) *httpd.Route {
	return httpd.NewRoute(httpd.Route{Name: name, Method: fasthttp.MethodPost, BodyLimit: limitBody,
		UsesStore: true, Envelope: AppendError})
}

// The routes. The plugin's and portal's calls sit at the root; the
// documented ones under /admin/public/api/ (DESIGN "iVALT-compatible
// surface"). A path under /ivalt that is no route is answered 404 in
// iVALT's envelope too (routeNotFound), not the server's default one.
var (
	routeAuthRequest   = ivaltRoute("ivalt_auth_request")
	routeAuthResult    = ivaltRoute("ivalt_auth_result")
	routeGeoResults    = ivaltRoute("ivalt_geo_fence_results")
	routeUserByEmail   = ivaltRoute("ivalt_user_by_email")
	routeGenerateToken = ivaltRoute("ivalt_generate_auth_token")
	routeAPIAuth       = ivaltRoute("ivalt_api_auth")
	routeVerifyUser    = ivaltRoute("ivalt_verify_user")
	routeSubmitResults = ivaltRoute("ivalt_submit_results")
	routeValidatePers  = ivaltRoute("ivalt_validate_person")
	routeValidateAuth  = ivaltRoute("ivalt_validate_global_auth")
	routeValidateUser  = ivaltRoute("ivalt_validate_user")
	routeAdminByEmail  = ivaltRoute("ivalt_admin_user_by_email")

	routeNotFound = httpd.NewRoute(httpd.Route{Name: "ivalt_unknown", Method: fasthttp.MethodPost,
		BodyLimit: limitBody, Envelope: AppendError})
)

// Prefix is the surface's path prefix.
const Prefix = "/ivalt"

const adminPrefix = "/admin/public/api/"

// paths maps each path under Prefix to its route.
var paths = map[string]*httpd.Route{
	"/biometric-auth-request":           routeAuthRequest,
	"/biometric-auth-result":            routeAuthResult,
	"/biometric-geo-fence-auth-results": routeGeoResults,
	"/get-user-by-email":                routeUserByEmail,

	adminPrefix + "generate-auth-token":              routeGenerateToken,
	adminPrefix + "api/v1/auth":                      routeAPIAuth,
	adminPrefix + "verify-user":                      routeVerifyUser,
	adminPrefix + "biometric-geo-fence-auth-results": routeSubmitResults,
	adminPrefix + "validate/person":                  routeValidatePers,
	adminPrefix + "validate/global/rest/auth":        routeValidateAuth,
	adminPrefix + "api/v1/validate/user":             routeValidateUser,
	adminPrefix + "get-user-by-email":                routeAdminByEmail,
}

// Paths lists the surface's paths, with Prefix, for the OpenAPI checks.
func Paths() []string {
	out := make([]string, 0, len(paths))
	for p := range paths {
		out = append(out, Prefix+p)
	}
	return out
}

// Route maps a path (with Prefix) to its route; none takes a parameter.
func (s *Surface) Route(path []byte) (*httpd.Route, []byte) {
	rest, ok := bytes.CutPrefix(path, []byte(Prefix))
	if !ok {
		return routeNotFound, nil
	}
	if r, ok := paths[string(rest)]; ok {
		return r, nil
	}
	return routeNotFound, nil
}

// Serve answers one request of route r in a pooled context.
func (s *Surface) Serve(rc *fasthttp.RequestCtx, r *httpd.Route, _ []byte) {
	c := s.pool.Get().(*reqCtx)
	c.Start(s.core, rc, r)
	switch {
	case r == routeNotFound:
		c.Fail(httpd.ErrRouteNotFound, nil)
	case c.Admit() && s.authAPIKey(c) && c.ReadBody(limitBody):
		switch r {
		case routeAuthRequest, routeVerifyUser:
			s.authRequest(c)
		case routeAuthResult, routeGeoResults:
			s.authResult(c, false)
		case routeSubmitResults:
			s.submitResults(c)
		case routeUserByEmail, routeAdminByEmail:
			s.userByEmail(c)
		case routeGenerateToken, routeAPIAuth:
			s.generateToken(c)
		case routeValidatePers:
			s.validatePerson(c)
		case routeValidateAuth:
			s.authResult(c, true)
		case routeValidateUser:
			s.validateUser(c)
		}
	}
	c.Send()
	c.release()
	s.pool.Put(c)
}
