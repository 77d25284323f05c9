package httpd

import (
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"
)

// DefaultMaxInFlight is the default bound on requests in flight (Admission):
// enough for the store to group many commits into one sync, few enough
// that an admitted request does not queue behind hundreds of others. See
// PERF.md, "Overload", for the measurement it comes from.
const DefaultMaxInFlight = 64

// DefaultShedHold is how long a refusal is held back before it is written
// (Admission); see PERF.md, "Overload".
const DefaultShedHold = 250 * time.Millisecond

// Admission bounds the requests a server works on at once, so that under
// overload it answers the requests it admits as fast as when it is not
// overloaded, and refuses the others at once, before reading their body
// or touching the store. Only routes that use the store count: they are
// the work; the probes, metrics and documents are cheap, and a probe
// refused under load would have an orchestrator restart a server that is
// busy, not broken.
//
// A refusal is 503 overloaded with Retry-After, pre-rendered in each
// route's envelope when the server is made: refusing costs a header and a
// write, far less than serving, so refusals cannot take the CPU the
// admitted requests need.
//
// A refused request's answer is held back for ShedHold (default
// DefaultShedHold) before it is written. Refusing costs the server about
// half of what serving does on one core (reading the request and writing
// the answer are most of both), so clients that re-send at once, ignoring
// Retry-After, would otherwise keep the CPU busy refusing them, and the
// admitted requests would wait behind hundreds of refusals for their turn
// on it. Held, a refused connection sends nothing more until its answer
// comes: the refusals a second are bounded by the connections over the
// bound divided by the hold, and the hold costs a sleeping goroutine, not
// CPU. A client that honours Retry-After (1 s) loses nothing by it.
//
// Routes that hold a request open waiting for an event (Route.Holds) are
// not counted here but by the hub's own bound (Hub, Config.MaxHeld): a
// held request costs a goroutine and a connection, not CPU, and thousands
// waiting must not shut out the requests that work.
type Admission struct {
	max      int64
	hold     time.Duration
	inFlight atomic.Int64
	answers  [][]byte // by route id: the 503 body in the route's envelope
	env      func(*Route) Envelope
	shed     *metrics.Counter
}

func newAdmission(max int, hold time.Duration, env func(*Route) Envelope, set *metrics.Set) *Admission {
	if max == 0 {
		max = DefaultMaxInFlight
	}
	switch {
	case hold == 0:
		hold = DefaultShedHold
	case hold < 0:
		hold = 0
	}
	a := &Admission{
		max:     int64(max),
		hold:    hold,
		answers: make([][]byte, len(routes)),
		env:     env,
		shed:    set.NewCounter(`countersign_requests_shed_total{reason="overloaded"}`),
	}
	for _, r := range routes {
		a.answers[r.id] = env(r)(nil, ErrOverloaded, nil)
	}
	return a
}

// counts reports whether requests of r are bounded.
func (a *Admission) counts(r *Route) bool { return a.max > 0 && r.UsesStore && !r.Holds }

// enter reports whether a request of r may be served now; when it may and
// r counts, the caller must call leave once it is answered.
func (a *Admission) enter(r *Route) bool {
	if !a.counts(r) {
		return true
	}
	if a.inFlight.Add(1) > a.max {
		a.inFlight.Add(-1)
		return false
	}
	return true
}

// full reports whether a request of r would be refused now (for a
// client that waits for "100 Continue" before sending its body).
func (a *Admission) full(r *Route) bool { return a.counts(r) && a.inFlight.Load() >= a.max }

// leave ends a request that enter admitted.
func (a *Admission) leave(r *Route) {
	if a.counts(r) {
		a.inFlight.Add(-1)
	}
}

// holdRefusal waits out the hold before a refusal is written (see
// Admission). time.Sleep reuses the goroutine's own timer: no allocation.
func (a *Admission) holdRefusal() {
	if a.hold > 0 {
		time.Sleep(a.hold)
	}
}

// InFlight is the number of counted requests being served.
func (a *Admission) InFlight() int { return int(a.inFlight.Load()) }

// refuse answers ctx 503 overloaded in r's envelope, without allocating:
// the body is the pre-rendered one, set without a copy.
func (a *Admission) refuse(ctx *fasthttp.RequestCtx, r *Route) {
	a.shed.Inc()
	ctx.Response.Header.SetStatusCode(fasthttp.StatusServiceUnavailable)
	ctx.Response.Header.SetContentTypeBytes(contentTypeJSON)
	ctx.Response.Header.SetBytesKV(headerRetryAfter, retryAfterOne)
	if r.id < len(a.answers) {
		ctx.Response.SetBodyRaw(a.answers[r.id])
		return
	}
	ctx.Response.SetBody(a.env(r)(nil, ErrOverloaded, nil)) // a route made after the server (tests)
}

var (
	headerRetryAfter = []byte(fasthttp.HeaderRetryAfter)
	retryAfterOne    = []byte("1")
)
