package httpd

import (
	"time"

	"github.com/valyala/fasthttp"
)

// Route describes one endpoint of a surface: what the core needs to know to
// serve it before (and around) the surface's handler. Routes are created by
// NewRoute as package-level values of the surface that owns them, so the
// metrics can index them by a small number.
type Route struct {
	Name      string        // the metrics label: snake_case, unique
	Method    string        // the only method accepted (GET also accepts HEAD)
	BodyLimit int           // the largest request body read, compressed or not
	UsesStore bool          // reads or writes the store: refused once it has failed
	Holds     bool          // may hold the request open waiting for an event (Hub)
	MaxHold   time.Duration // the longest a request of a route that Holds is held (HoldFor)
	Envelope  Envelope      // renders the route's errors; nil for the server's default
	// OverloadMax, when not 0, is how many requests of the route are
	// served at once while the server is overloaded (Admission): what the
	// route needs in flight to sustain its rate, for a route whose
	// requests are long next to the others'.
	OverloadMax int

	id int
}

var routes []*Route

// NewRoute registers r and returns it. A route without a method accepts
// GET, one without a body limit LimitSmall. A route that holds requests
// must bound how long (MaxHold): a route registered without one panics at
// start-up.
func NewRoute(r Route) *Route {
	if r.Method == "" {
		r.Method = fasthttp.MethodGet
	}
	if r.BodyLimit == 0 {
		r.BodyLimit = LimitSmall
	}
	if r.Holds && r.MaxHold <= 0 {
		panic("httpd: route " + r.Name + " holds requests but has no MaxHold")
	}
	for _, o := range routes {
		if o.Name == r.Name {
			panic("httpd: route " + r.Name + " registered twice")
		}
	}
	r.id = len(routes)
	p := &r
	routes = append(routes, p)
	return p
}

// RouteUnknown is every path that matches no route: it is answered 404
// route_not_found, and reads up to LimitMax of a body (the limit a path that
// only matches a route after percent-decoding needs when its headers
// arrive; the handler then applies the route's own).
var RouteUnknown = NewRoute(Route{Name: "unknown", BodyLimit: LimitMax})

func (r *Route) String() string { return r.Name }

// Surface is one protocol the server speaks (the native API, and those to
// come): it names the route of a path under its prefix, and serves the
// requests routed to it, in a pooled context of its own that embeds Ctx.
type Surface interface {
	// Route returns the route of path and its path parameter, or
	// RouteUnknown.
	Route(path []byte) (*Route, []byte)
	// Serve answers one request of route r (RouteUnknown included; see
	// Ctx.Admit).
	Serve(rc *fasthttp.RequestCtx, r *Route, param []byte)
}

// Request body limits, in bytes. They bound both what is read from the
// connection (an announced Content-Length above the limit is answered 413
// before the body is read) and what a compressed body may decompress to.
const (
	// LimitSmall is for session creation and bodiless routes: three short strings.
	LimitSmall = 4 << 10
	// LimitValidate fits the largest sessionData match.* allows in practice
	// (256 items of realistic size); pathological 4 KiB values on all 256
	// items do not fit, and are refused with 413.
	LimitValidate = 1 << 20
	// LimitEvents fits the most fields of ordinary size and frames of 512-d
	// embeddings (64 x ~2.8 KiB of base64) an events request may carry,
	// with ample room.
	LimitEvents = 4 << 20
	// LimitMax is the largest of the above: fasthttp's own cap for a request
	// whose path could not be classified when its headers arrived.
	LimitMax = LimitEvents
)
