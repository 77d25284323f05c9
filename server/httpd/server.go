// Package httpd is the HTTP core every countersign surface uses: the pooled
// per-request context (Ctx) each surface embeds in its own, the route
// descriptions (Route: method, body limit, store use, envelope), the error
// catalog (Register) rendered by each surface in its own envelope, the
// listener with its per-IP limit and TLS, request metrics, panic recovery,
// the hub that holds requests waiting for an event (Hub), and the answers
// to what fasthttp refuses before a handler runs. It knows
// no surface: the server hands it the one prefix switch that picks the
// surface of a path.
package httpd

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/countersign/countersign/store"
)

// DefaultMaxWaitingPerIP is the default bound on one address's
// connections stalled before their first request header block: more than a
// NAT's clients open at the same instant, few enough that one address
// holds little of the server while it waits.
const DefaultMaxWaitingPerIP = 64

// HeaderBufferSize is fasthttp's read buffer, which also bounds the request
// line plus headers: larger headers are answered 431.
const HeaderBufferSize = 8 << 10

// Config configures a Server.
type Config struct {
	// Surface is the prefix switch: the surface that owns path. It is
	// called for every request, and for the body limit of a request whose
	// headers just arrived.
	Surface func(path []byte) Surface
	// Envelope renders errors of requests that match no route, and of
	// connections refused before a request is read.
	Envelope Envelope
	// Hook, when set (by a test), runs before each request is served, inside
	// the panic recovery. Always nil in production.
	Hook func(*fasthttp.RequestCtx)

	TLS           *tls.Config // nil: plain HTTP
	MaxConnsPerIP int         // connections per address; negative for no limit
	// MaxWaitingPerIP bounds the connections of one address stalled
	// before their first request header block; past it the oldest stalled
	// one is evicted (perIPListener). 0 is DefaultMaxWaitingPerIP,
	// negative no bound.
	MaxWaitingPerIP int
	// MaxInFlight bounds the requests of store routes served at once
	// (Admission); 0 is DefaultMaxInFlight, negative no bound.
	MaxInFlight int
	// MaxHeld bounds the requests held waiting for an event (Hub),
	// counted apart from MaxInFlight; 0 is DefaultMaxHeld, negative no
	// bound.
	MaxHeld int
	// ShedHold is how long a refusal over MaxInFlight is held before it
	// is written (Admission); 0 is DefaultShedHold, negative none.
	ShedHold time.Duration

	ReadTimeout, WriteTimeout, IdleTimeout time.Duration
	Logger                                 *slog.Logger

	// Store, when set, is watched: the moment it fails (a write to its
	// disk failed, say), the server fails closed as if a request had met
	// the failure (MarkStoreDead), so /readyz turns 503 and Failed closes
	// even with no request in flight.
	Store *store.DB
}

// Server is the core of the HTTP service: fasthttp, configured once, in
// front of the surfaces. It is safe for concurrent use.
type Server struct {
	cfg     Config
	log     *slog.Logger
	metrics *Metrics
	abuse   *abuseLog
	admit   *Admission
	hub     *Hub
	hs      *fasthttp.Server

	// storeDead is set, and failed closed, once the store has failed for
	// good (see StoreFatal and Failed).
	storeDead     atomic.Bool
	storeDeadOnce sync.Once
	failed        chan struct{}
	// storeFull: the store failed because its disk is full, answered
	// storage_full rather than store_unavailable.
	storeFull atomic.Bool
	// stopWatch ends the goroutine watching Config.Store (Shutdown).
	stopWatch     chan struct{}
	stopWatchOnce sync.Once
}

// New prepares the core; it does not listen.
func New(cfg Config) *Server {
	s := &Server{cfg: cfg, log: cfg.Logger, metrics: newMetrics(), abuse: newAbuseLog(cfg.Logger), failed: make(chan struct{}),
		stopWatch: make(chan struct{})}
	if cfg.Store != nil {
		go s.watchStore(cfg.Store)
	}
	s.admit = newAdmission(cfg.MaxInFlight, cfg.ShedHold, s.envelope, s.metrics.Set)
	s.hub = NewHub(cfg.MaxHeld, s.metrics.Set)
	s.hs = &fasthttp.Server{
		Handler:                      s.handle,
		ErrorHandler:                 s.handleTransportError,
		HeaderReceived:               s.headerReceived,
		ExpectHandler:                s.handleExpect,
		Name:                         "countersign",
		ReadBufferSize:               HeaderBufferSize,
		ReadTimeout:                  cfg.ReadTimeout,
		WriteTimeout:                 cfg.WriteTimeout,
		IdleTimeout:                  cfg.IdleTimeout,
		MaxRequestBodySize:           LimitMax,
		CloseOnShutdown:              true,
		DisablePreParseMultipartForm: true,
		SecureErrorLogMessage:        true,
		Logger:                       fasthttpLogger{s.abuse},
	}
	return s
}

// Admission is the server's bound on requests in flight.
func (s *Server) Admission() *Admission { return s.admit }

// Hub holds the server's requests that wait for an event.
func (s *Server) Hub() *Hub { return s.hub }

// Log is the server's logger.
func (s *Server) Log() *slog.Logger { return s.log }

// Metrics are the server's metrics, on which surfaces register theirs.
func (s *Server) Metrics() *Metrics { return s.metrics }

// Handler returns the request handler, for serving over a listener the
// caller manages.
func (s *Server) Handler() fasthttp.RequestHandler { return s.handle }

// Serve accepts connections on ln until Shutdown. When the configuration has
// TLS, ln is wrapped in it; connections over MaxConnsPerIP are answered 429.
func (s *Server) Serve(ln net.Listener) error {
	if s.cfg.TLS != nil {
		ln = tls.NewListener(ln, s.cfg.TLS)
	}
	// IP connections are always wrapped, capped or not: the wrapper also
	// closes a connection refused mid-request gently (closeLingering) and
	// refuses TLS on a plain port. (In-memory and unix ones are not.)
	waiting := s.cfg.MaxWaitingPerIP
	if waiting == 0 {
		waiting = DefaultMaxWaitingPerIP
	}
	ln = newPerIPListener(ln, s.cfg.MaxConnsPerIP, waiting, s.metrics, s.cfg.Envelope, s.abuse)
	return s.hs.Serve(ln)
}

// Shutdown stops accepting connections, wakes the held requests (which
// answer at once) and waits for in-flight requests to be answered, or ctx
// to end. The hub is woken first: fasthttp waits for every handler, and a
// held one would otherwise keep it waiting for its whole hold.
func (s *Server) Shutdown(ctx context.Context) error {
	s.stopWatchOnce.Do(func() { close(s.stopWatch) })
	s.hub.Shutdown()
	return s.hs.ShutdownWithContext(ctx)
}

// Failed returns a channel that is closed when the store has failed for
// good (MarkStoreDead).
func (s *Server) Failed() <-chan struct{} { return s.failed }

// StoreDead reports whether the store has failed for good.
func (s *Server) StoreDead() bool { return s.storeDead.Load() }

// StoreFatal reports whether a recovered panic is the store giving up: the
// store panics with an error wrapping store.ErrFatal when Pebble calls its
// logger's Fatalf, the one panic that means the database must not be used
// any more.
func StoreFatal(p any) bool {
	err, ok := p.(error)
	return ok && errors.Is(err, store.ErrFatal)
}

// MarkStoreDead records that the store failed for good (see Failed): from
// then on every route that uses the store answers 503, storage_full when p
// (a recovered panic or a store error) or the store says the disk is full.
// Only the first call logs: one line for the state change, not one per
// request that meets it.
func (s *Server) MarkStoreDead(p any) {
	if err, ok := p.(error); (ok && errors.Is(err, store.ErrFull)) || (s.cfg.Store != nil && s.cfg.Store.Full()) {
		s.storeFull.Store(true) // before storeDead, so StoreError sees it
	}
	s.storeDeadOnce.Do(func() {
		s.storeDead.Store(true)
		if s.storeFull.Load() {
			s.log.Error("the store's disk is full; answering 503 storage_full until restarted with space freed",
				"cause", fmt.Sprint(p))
		} else {
			s.log.Error("the store failed and must not be used again; answering 503 until restarted", "panic", fmt.Sprint(p))
		}
		close(s.failed)
	})
}

// StoreError is the answer of a route that uses the store once it has
// failed: storage_full for a full disk, store_unavailable otherwise.
func (s *Server) StoreError() *Error {
	if s.storeFull.Load() {
		return ErrStorageFull
	}
	return ErrStoreUnavailable
}

// watchStore fails the server closed the moment db fails, until Shutdown.
func (s *Server) watchStore(db *store.DB) {
	select {
	case <-db.Failed():
		if db.Full() {
			s.MarkStoreDead(store.ErrFull)
		} else {
			s.MarkStoreDead(store.ErrFatal)
		}
	case <-s.stopWatch:
	}
}

// envelope is the envelope r's errors are rendered in.
func (s *Server) envelope(r *Route) Envelope {
	if r.Envelope != nil {
		return r.Envelope
	}
	return s.cfg.Envelope
}

// route classifies a path: the surface that owns it, its route there and
// the path parameter.
func (s *Server) route(path []byte) (Surface, *Route, []byte) {
	sf := s.cfg.Surface(path)
	r, param := sf.Route(path)
	return sf, r, param
}

// handle is the fasthttp handler: it routes, refuses ambiguous framing and
// what Admission sheds, and answers 500 (keeping the server up) if a
// handler panics.
func (s *Server) handle(ctx *fasthttp.RequestCtx) {
	start := time.Now()
	if a, ok := ctx.Conn().(interface{ requestArrived() }); ok {
		a.requestArrived()
	}
	sf, r, param := s.route(ctx.Path())
	if why := framingProblem(&ctx.Request.Header); why != "" {
		s.refuseFraming(ctx, r, why, start)
		return
	}
	if !s.admit.enter(r) {
		s.admit.refuse(ctx, r)
		s.metrics.Observe(r, fasthttp.StatusServiceUnavailable, start)
		s.admit.holdRefusal()
		return
	}
	ok := false
	defer func() {
		if ok {
			return
		}
		s.admit.leave(r)
		p := recover()
		s.metrics.panics.Inc()
		fatal := StoreFatal(p)
		if !fatal {
			s.log.Error("handler panic", "route", r.String(), "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
		}
		ctx.Response.Reset()
		ctx.SetContentType("application/json")
		e := ErrInternal
		if fatal {
			// Not a bug in a handler: a write could not be made durable.
			// Fail closed, as for any write the store refuses. Every
			// commit that met the failed write panics so; MarkStoreDead
			// logs the first, and a stack per request would say nothing.
			s.MarkStoreDead(p)
			e = s.StoreError()
			ctx.Response.Header.Set(fasthttp.HeaderRetryAfter, "1")
		}
		ctx.SetStatusCode(e.Status)
		ctx.SetBody(s.envelope(r)(nil, e, nil))
		s.metrics.Observe(r, e.Status, start)
		// The surface's context is dropped, not pooled: its state is unknown.
	}()
	if s.cfg.Hook != nil {
		s.cfg.Hook(ctx)
	}
	sf.Serve(ctx, r, param)
	s.admit.leave(r)
	status := ctx.Response.StatusCode()
	s.metrics.Observe(r, status, start)
	ok = true
	if status == fasthttp.StatusServiceUnavailable && (s.admit.counts(r) || r.Holds) {
		// A surface's own shedding (a full queue, the hub's bound) is
		// held like the core's, after its place is given back, for the
		// same reason: a device re-polling at once would otherwise keep
		// the CPU busy refusing it.
		s.admit.holdRefusal()
	}
}

// refuseFraming answers a request whose framing is ambiguous
// (framingProblem) 400 and closes its connection: what follows its body
// on the connection may be a request smuggled past a proxy, and is not
// read.
func (s *Server) refuseFraming(ctx *fasthttp.RequestCtx, r *Route, why string, start time.Time) {
	msg := append([]byte("The request could not be parsed: "), why...)
	msg = append(msg, '.')
	ctx.Response.Reset()
	ctx.SetStatusCode(ErrBadRequest.Status)
	ctx.SetContentType("application/json")
	ctx.SetBody(s.envelope(r)(nil, ErrBadRequest, msg))
	ctx.SetConnectionClose()
	s.metrics.Observe(r, ErrBadRequest.Status, start)
	lingerOnClose(ctx)
}

// headerReceived applies the route's body limit as soon as the headers are
// in, so that fasthttp answers an announced oversized body (through
// handleTransportError) before reading it.
func (s *Server) headerReceived(h *fasthttp.RequestHeader) fasthttp.RequestConfig {
	return fasthttp.RequestConfig{MaxRequestBodySize: s.routeOfURI(h.RequestURI()).BodyLimit}
}

// routeOfURI classifies a raw request URI (before percent-decoding) for its
// body limit. A path that only matches a route after decoding gets
// RouteUnknown's LimitMax here, and the handler applies the route's limit
// once the body is read.
func (s *Server) routeOfURI(uri []byte) *Route {
	for i, ch := range uri {
		if ch == '?' || ch == '#' {
			uri = uri[:i]
			break
		}
	}
	_, r, _ := s.route(uri)
	return r
}

// handleTransportError answers what fasthttp refused before the handler ran,
// in the envelope of the route. fasthttp closes the connection afterwards.
func (s *Server) handleTransportError(ctx *fasthttp.RequestCtx, err error) {
	var e *Error
	var msg []byte
	var small *fasthttp.ErrSmallBuffer
	var netErr net.Error
	r := s.routeOfURI(ctx.Request.Header.RequestURI())
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		e = ErrBodyTooLarge
		// fasthttp resets the request when a chunked body runs over, so
		// the route (and its limit) is unknown then: keep the catalog's
		// sentence rather than name another route's limit.
		if r != RouteUnknown {
			msg = appendTooLarge(msg, r.BodyLimit)
		}
	case errors.As(err, &small):
		e = ErrHeadersTooLarge
		msg = append(msg, "The request line and headers are larger than "...)
		msg = AppendSize(msg, HeaderBufferSize)
		msg = append(msg, '.')
	case errors.As(err, &netErr) && netErr.Timeout():
		e = ErrRequestTimeout
	default:
		e = ErrBadRequest
		if why := transportReason(err); why != "" {
			msg = append(msg, "The request could not be parsed: "...)
			msg = append(msg, why...)
			msg = append(msg, '.')
		}
	}
	ctx.Response.Reset()
	ctx.SetStatusCode(e.Status)
	ctx.SetContentType("application/json")
	ctx.SetBody(s.envelope(r)(nil, e, msg))
	s.metrics.Observe(r, e.Status, time.Now())
	if e != ErrRequestTimeout {
		// fasthttp closes the connection after this answer, perhaps with
		// the client still sending (a body over the limit): drain before
		// closing, or the kernel resets the connection and the client
		// loses the answer (closeLingering). A silent client is not
		// waited for again.
		lingerOnClose(ctx)
	}
}

// lingerOnClose makes the request's connection close gently, when it is one
// the listener wrapped.
func lingerOnClose(ctx *fasthttp.RequestCtx) {
	if lc, ok := ctx.Conn().(interface{ lingerOnClose() }); ok {
		lc.lingerOnClose()
	}
}

// transportReason names what fasthttp refused in a request, for the
// answer: one of the fixed texts of its known refusals, or "" (the
// catalog's sentence then). Not fasthttp's message itself: several quote
// the request, credentials included.
func transportReason(err error) string {
	for _, r := range transportReasons {
		if errors.Is(err, r.err) {
			return r.why
		}
	}
	return ""
}

var transportReasons = []struct {
	err error
	why string
}{
	{fasthttp.ErrDuplicateContentLength, "Content-Length is given more than once"},
	{fasthttp.ErrUnsupportedTransferEncoding, "the Transfer-Encoding is not supported (only chunked)"},
	{fasthttp.ErrNonNumericChars, "Content-Length has non-numeric characters"},
	{fasthttp.ErrMissingRequestMethod, "the request line has no method"},
	{fasthttp.ErrUnsupportedRequestMethod, "the request method is not supported"},
	{fasthttp.ErrEmptyRequestURI, "the request line has no URI"},
	{fasthttp.ErrBadTrailer, "a chunked trailer names a field that may not be a trailer"},
	{errTLSOnPlainPort, "this port speaks plain HTTP, and the client began a TLS handshake"},
}

// handleExpect answers "Expect: 100-continue" before the body is sent: a
// request Admission would refuse gets its 503 at once, an announced body
// over the route's limit the JSON 413 (fasthttp
// writes the response set here, without calling the handler, and closes the
// connection); anything else is invited to send its body.
func (s *Server) handleExpect(ctx *fasthttp.RequestCtx) int {
	r := s.routeOfURI(ctx.Request.Header.RequestURI())
	if s.admit.full(r) {
		// Refused before the client sends its body. fasthttp closes the
		// connection after this answer, so it is not held (Admission):
		// the client must reconnect to send more.
		s.admit.refuse(ctx, r)
		s.metrics.Observe(r, fasthttp.StatusServiceUnavailable, time.Now())
		lingerOnClose(ctx)
		return fasthttp.StatusServiceUnavailable
	}
	if ctx.Request.Header.ContentLength() <= r.BodyLimit {
		return fasthttp.StatusContinue
	}
	ctx.SetContentType("application/json")
	ctx.SetBody(s.envelope(r)(nil, ErrBodyTooLarge, appendTooLarge(nil, r.BodyLimit)))
	s.metrics.Observe(r, ErrBodyTooLarge.Status, time.Now())
	// A client may send its body without waiting for the 100: drain it
	// before the close, as after any refusal mid-request.
	lingerOnClose(ctx)
	return ErrBodyTooLarge.Status
}

// fasthttpLogger sends fasthttp's own log lines to the abuse log: fasthttp
// logs one line per connection it could not serve (a malformed request, a
// failed TLS handshake), which is a number clients choose.
type fasthttpLogger struct{ a *abuseLog }

// Errors are cut at their first quote: fasthttp quotes the bytes it could
// not parse ("malformed mime header: missing colon: ..."), which may hold
// a credential, and nothing secret is logged.
func (f fasthttpLogger) Printf(format string, args ...any) {
	kind := abuseTransport
	for i, arg := range args {
		if err, ok := arg.(error); ok {
			if isTLSHandshakeError(err) {
				kind = abuseTLS
			}
			msg := err.Error()
			if q := strings.IndexByte(msg, '"'); q >= 0 {
				msg = strings.TrimRight(msg[:q], ": ") + " (quoted request bytes left out)"
			}
			args[i] = msg
		}
	}
	f.a.notef(kind, format, args...)
}

// isTLSHandshakeError reports whether err is a failed TLS handshake (the
// handshake runs in the connection's first read, so fasthttp reports it as
// a failure to serve the connection).
// crypto/tls's handshake errors are of several types, some unexported, and
// all say "tls: "; fasthttp may wrap them without %w.
func isTLSHandshakeError(err error) bool {
	var rh tls.RecordHeaderError
	return errors.As(err, &rh) || strings.Contains(err.Error(), "tls: ")
}

// TLSFiles names the PEM files of the server's TLS configuration.
type TLSFiles struct {
	Cert, Key         string // both or neither
	ClientCA          string // the bundle client certificates must chain to
	RequireClientCert bool   // refuse handshakes without a valid client certificate
}

// LoadTLS builds the TLS configuration Serve wraps listeners with: nil
// without a certificate. Its errors say what is wrong with the files.
func LoadTLS(f TLSFiles) (*tls.Config, error) {
	if (f.Cert == "") != (f.Key == "") {
		return nil, errors.New("TLS needs both a certificate and a key")
	}
	if f.Cert == "" {
		if f.ClientCA != "" || f.RequireClientCert {
			return nil, errors.New("client certificates need TLS (a certificate and a key)")
		}
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		return nil, err
	}
	conf := &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS12,
	}
	switch {
	case f.ClientCA != "":
		pem, err := os.ReadFile(f.ClientCA)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s holds no PEM certificate", f.ClientCA)
		}
		conf.ClientCAs = pool
		conf.ClientAuth = tls.VerifyClientCertIfGiven
		if f.RequireClientCert {
			conf.ClientAuth = tls.RequireAndVerifyClientCert
		}
	case f.RequireClientCert:
		return nil, errors.New("requiring client certificates needs a client CA bundle")
	}
	return conf, nil
}

// ClientAuthName says how c verifies client certificates, for the log.
func ClientAuthName(c *tls.Config) string {
	switch {
	case c == nil || c.ClientAuth == tls.NoClientCert:
		return "none"
	case c.ClientAuth == tls.RequireAndVerifyClientCert:
		return "required"
	default:
		return "verified-if-given"
	}
}
