// Package native is countersign's own API, /v1 (and the legacy
// /api/v1/validate): collection sessions and their events, validate, stored
// decisions, and the frame-scoring workers that fold a session's frames
// while it is collected. It is one surface over the core (server/httpd),
// the compiled organizations (server/tenant), the engine and the store.
package native

import (
	"bytes"
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"

	"github.com/countersign/countersign/server/httpd"
	"github.com/countersign/countersign/server/tenant"
	"github.com/countersign/countersign/store"
)

// Deps is what the native surface is built over. The caller owns them all.
type Deps struct {
	Core         *httpd.Server
	DB           *store.DB
	Orgs         *tenant.Cache
	EmbeddingDim int
	Workers      int // frame scoring workers
	QueueSize    int // frame jobs queued before events answer 503
	Now          func() time.Time
}

// Surface serves the native routes. It is safe for concurrent use.
type Surface struct {
	core *httpd.Server
	db   *store.DB
	orgs *tenant.Cache
	log  *slog.Logger
	now  func() time.Time
	dim  int

	pool    sync.Pool // *reqCtx
	metrics *surfaceMetrics
	frames  *FramePool
}

// New builds the native surface and starts its frame-scoring workers; Stop
// stops them.
func New(d Deps) *Surface {
	s := &Surface{
		core: d.Core,
		db:   d.DB,
		orgs: d.Orgs,
		log:  d.Core.Log(),
		now:  d.Now,
		dim:  d.EmbeddingDim,
	}
	s.pool.New = func() any { return newReqCtx(s) }
	s.metrics = newSurfaceMetrics(d.Core.Metrics().Set, s, d)
	s.frames = newFramePool(s, d.Workers, d.QueueSize)
	return s
}

// Stop lets the frame workers finish every queued job, then stops them; it
// returns ctx's error if ctx ends first.
func (s *Surface) Stop(ctx context.Context) error { return s.frames.stop(ctx) }

// Frames is the frame-scoring queue.
func (s *Surface) Frames() *FramePool { return s.frames }

// The native routes.
var (
	routeCreateSession  = nativeRoute("create_session", fasthttp.MethodPost, httpd.LimitSmall)
	routeEvents         = eventsRoute()
	routeSession        = nativeRoute("session", fasthttp.MethodGet, httpd.LimitSmall)
	routeValidate       = nativeRoute("validate", fasthttp.MethodPost, httpd.LimitValidate)
	routeValidateLegacy = nativeRoute("validate_legacy", fasthttp.MethodPost, httpd.LimitValidate)
	routeDecision       = nativeRoute("decision", fasthttp.MethodGet, httpd.LimitSmall)

	routeCreateApproval = nativeRoute("create_approval", fasthttp.MethodPost, limitApprovalBody)
	routeApproval       = httpd.NewRoute(httpd.Route{Name: "approval", Method: fasthttp.MethodGet, BodyLimit: httpd.LimitSmall,
		UsesStore: true, Holds: true, MaxHold: maxApprovalHold, Envelope: AppendError})
	routeCancelApproval = nativeRoute("cancel_approval", fasthttp.MethodPost, httpd.LimitSmall)
	routeApprovalOTP    = nativeRoute("approval_otp", fasthttp.MethodPost, httpd.LimitSmall)
)

// nativeRoute registers a native route: every one reads or writes the store.
func nativeRoute(name, method string, limit int) *httpd.Route {
	return httpd.NewRoute(httpd.Route{Name: name, Method: method, BodyLimit: limit, UsesStore: true, Envelope: AppendError})
}

// eventsOverloadMax is how many events posts are served at once while the
// server is overloaded (httpd.Route.OverloadMax). A post costs the CPU of
// several validates and writes kilobytes to the log; 16 at once sustain
// the rate 64 do, and each admitted post then waits behind 15 others, not
// 63 (PERF.md, "Overload").
const eventsOverloadMax = 16

// eventsRoute registers the events route, held to eventsOverloadMax under
// overload.
func eventsRoute() *httpd.Route {
	return httpd.NewRoute(httpd.Route{Name: "events", Method: fasthttp.MethodPost, BodyLimit: httpd.LimitEvents,
		UsesStore: true, OverloadMax: eventsOverloadMax, Envelope: AppendError})
}

const (
	prefixSessions  = "/v1/sessions/"
	prefixDecisions = "/v1/decisions/"
	prefixApprovals = "/v1/approvals/"
	suffixEvents    = "/events"
	suffixCancel    = "/cancel"
	suffixOTP       = "/otp"
)

// Route maps a path to its native route and path parameter (csid or
// decision id).
func (s *Surface) Route(path []byte) (*httpd.Route, []byte) {
	switch string(path) {
	case "/v1/validate":
		return routeValidate, nil
	case "/api/v1/validate":
		return routeValidateLegacy, nil
	case "/v1/sessions":
		return routeCreateSession, nil
	case "/v1/approvals":
		return routeCreateApproval, nil
	}
	if rest, ok := bytes.CutPrefix(path, []byte(prefixSessions)); ok && len(rest) > 0 {
		i := bytes.IndexByte(rest, '/')
		switch {
		case i < 0:
			return routeSession, rest
		case i > 0 && string(rest[i:]) == suffixEvents:
			return routeEvents, rest[:i]
		}
		return httpd.RouteUnknown, nil
	}
	if rest, ok := bytes.CutPrefix(path, []byte(prefixApprovals)); ok && len(rest) > 0 {
		i := bytes.IndexByte(rest, '/')
		switch {
		case i < 0:
			return routeApproval, rest
		case i > 0 && string(rest[i:]) == suffixCancel:
			return routeCancelApproval, rest[:i]
		case i > 0 && string(rest[i:]) == suffixOTP:
			return routeApprovalOTP, rest[:i]
		}
		return httpd.RouteUnknown, nil
	}
	if rest, ok := bytes.CutPrefix(path, []byte(prefixDecisions)); ok && len(rest) > 0 && bytes.IndexByte(rest, '/') < 0 {
		return routeDecision, rest
	}
	return httpd.RouteUnknown, nil
}

// Serve answers one request of route r in a pooled context.
func (s *Surface) Serve(rc *fasthttp.RequestCtx, r *httpd.Route, param []byte) {
	c := s.pool.Get().(*reqCtx)
	c.Start(s.core, rc, r)
	if c.Admit() {
		switch r {
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
		case routeCreateApproval:
			s.createApproval(c)
		case routeApproval:
			s.approvalStatus(c, param)
		case routeCancelApproval:
			s.cancelApproval(c, param)
		case routeApprovalOTP:
			s.approvalOTP(c, param)
		}
	}
	c.Send()
	c.release()
	s.pool.Put(c)
}

// surfaceMetrics are the native surface's metrics, on the server's set.
type surfaceMetrics struct {
	verified    *metrics.Counter
	notVerified *metrics.Counter
	processing  *metrics.Counter
	enrollments *metrics.Counter

	frameJobs       *metrics.Counter
	frameJobErrors  *metrics.Counter
	framesScored    *metrics.Counter
	queueRejections *metrics.Counter
}

func newSurfaceMetrics(set *metrics.Set, s *Surface, d Deps) *surfaceMetrics {
	m := &surfaceMetrics{
		verified:        set.NewCounter(`countersign_decisions_total{verdict="verified"}`),
		notVerified:     set.NewCounter(`countersign_decisions_total{verdict="not_verified"}`),
		processing:      set.NewCounter(`countersign_validate_processing_total`),
		enrollments:     set.NewCounter(`countersign_enrollments_total`),
		frameJobs:       set.NewCounter(`countersign_frame_jobs_total`),
		frameJobErrors:  set.NewCounter(`countersign_frame_job_errors_total`),
		framesScored:    set.NewCounter(`countersign_frames_scored_total`),
		queueRejections: set.NewCounter(`countersign_frame_queue_rejections_total`),
	}
	set.NewGauge(`countersign_frame_queue_depth`, func() float64 {
		if s.frames == nil {
			return 0
		}
		return float64(s.frames.Depth())
	})
	set.NewGauge(`countersign_frame_queue_capacity`, func() float64 { return float64(d.QueueSize) })
	set.NewGauge(`countersign_frame_workers`, func() float64 { return float64(d.Workers) })
	return m
}

func (m *surfaceMetrics) decision(verified bool) {
	if verified {
		m.verified.Inc()
	} else {
		m.notVerified.Inc()
	}
}
