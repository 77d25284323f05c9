package server

import (
	"bytes"

	"github.com/valyala/fasthttp"
)

// route names one endpoint; it indexes metrics and body limits.
type route uint8

const (
	routeUnknown route = iota
	routeHealthz
	routeReadyz
	routeMetrics
	routeOpenAPI
	routeCreateSession
	routeEvents
	routeSession
	routeValidate
	routeValidateLegacy
	routeDecision
	numRoutes
)

var routeNames = [numRoutes]string{
	routeUnknown:        "unknown",
	routeHealthz:        "healthz",
	routeReadyz:         "readyz",
	routeMetrics:        "metrics",
	routeOpenAPI:        "openapi",
	routeCreateSession:  "create_session",
	routeEvents:         "events",
	routeSession:        "session",
	routeValidate:       "validate",
	routeValidateLegacy: "validate_legacy",
	routeDecision:       "decision",
}

func (r route) String() string { return routeNames[r] }

// method is the only method each route accepts.
func (r route) method() string {
	switch r {
	case routeCreateSession, routeEvents, routeValidate, routeValidateLegacy:
		return fasthttp.MethodPost
	}
	return fasthttp.MethodGet
}

// usesStore reports whether the route reads or writes the store's records.
func (r route) usesStore() bool {
	switch r {
	case routeCreateSession, routeEvents, routeSession, routeValidate, routeValidateLegacy, routeDecision:
		return true
	}
	return false
}

// bodyLimit is the largest request body the route reads, compressed or not.
func (r route) bodyLimit() int {
	switch r {
	case routeEvents:
		return limitEvents
	case routeValidate, routeValidateLegacy:
		return limitValidate
	case routeUnknown:
		return limitMax
	}
	return limitSmall
}

const (
	prefixSessions  = "/v1/sessions/"
	prefixDecisions = "/v1/decisions/"
	suffixEvents    = "/events"
)

// matchRoute maps a path to its route and path parameter (csid or decision id).
func matchRoute(path []byte) (route, []byte) {
	switch string(path) {
	case "/v1/validate":
		return routeValidate, nil
	case "/api/v1/validate":
		return routeValidateLegacy, nil
	case "/v1/sessions":
		return routeCreateSession, nil
	case "/healthz":
		return routeHealthz, nil
	case "/readyz":
		return routeReadyz, nil
	case "/metrics":
		return routeMetrics, nil
	case "/openapi.json":
		return routeOpenAPI, nil
	}
	if rest, ok := bytes.CutPrefix(path, []byte(prefixSessions)); ok && len(rest) > 0 {
		i := bytes.IndexByte(rest, '/')
		switch {
		case i < 0:
			return routeSession, rest
		case i > 0 && string(rest[i:]) == suffixEvents:
			return routeEvents, rest[:i]
		}
		return routeUnknown, nil
	}
	if rest, ok := bytes.CutPrefix(path, []byte(prefixDecisions)); ok && len(rest) > 0 && bytes.IndexByte(rest, '/') < 0 {
		return routeDecision, rest
	}
	return routeUnknown, nil
}

// dispatch routes one request to its handler.
func (s *Server) dispatch(c *reqCtx, ctx *fasthttp.RequestCtx) {
	r, param := matchRoute(ctx.Path())
	c.route = r
	if s.testHook != nil {
		s.testHook(ctx)
	}
	if r == routeUnknown {
		c.fail(errRouteNotFound, nil)
		c.send()
		return
	}
	if m := r.method(); string(ctx.Method()) != m && !(m == fasthttp.MethodGet && ctx.IsHead()) {
		ctx.Response.Header.Set(fasthttp.HeaderAllow, m)
		c.fail(errMethodNotAllowed, nil)
		c.send()
		return
	}
	if s.storeDead.Load() && r.usesStore() {
		// What the store holds in memory may include writes that never
		// became durable: answer nothing from it (see Failed).
		c.fail(errStoreUnavailable, nil)
		c.send()
		return
	}
	switch r {
	case routeHealthz:
		c.status = fasthttp.StatusOK
		c.out = append(c.out, `{"status":"ok"}`...)
	case routeReadyz:
		if s.Ready() {
			c.status = fasthttp.StatusOK
			c.out = append(c.out, `{"status":"ready"}`...)
		} else {
			c.fail(errNotReady, nil)
		}
	case routeMetrics:
		s.serveMetrics(c)
	case routeOpenAPI:
		c.status = fasthttp.StatusOK
		c.out = append(c.out, openAPIDocument()...)
	case routeCreateSession:
		s.createSession(c)
	case routeEvents:
		s.appendEvents(c, param)
	case routeSession:
		s.sessionStatus(c, param)
	case routeValidate, routeValidateLegacy:
		s.validate(c)
	case routeDecision:
		s.decision(c, param)
	}
	c.send()
}
