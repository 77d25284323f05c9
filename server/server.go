// Package server is countersign's HTTP service: fasthttp, routing by a switch
// on the path, one pooled context per request, strict JSON decoding (a
// byte-level check, then sonic), responses encoded by appending, and the
// frame-scoring worker pool. It serves the native /v1 surface over the
// engine (engine/match, engine/biometric, engine/policy) and the store.
//
// Lifecycle: New (opens nothing: the caller owns the store), Serve or
// ListenAndServe, then Shutdown, which drains in-flight requests and lets the
// workers finish every queued job before it returns; the caller closes the
// store afterwards. Failed tells the caller when the store has failed for
// good and the process should exit.
package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"net"
	"os"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bytedance/sonic"
	"github.com/valyala/fasthttp"

	"github.com/countersign/countersign/store"
)

// Config is how the command line configures a Server. Zero values select the
// documented defaults.
type Config struct {
	Addr              string // listen address for ListenAndServe; default 127.0.0.1:8080
	TLSCert, TLSKey   string // PEM files; both or neither
	ClientCA          string // PEM bundle that client certificates must chain to
	RequireClientCert bool   // refuse TLS handshakes without a valid client certificate
	EmbeddingDim      int    // D, default 512
	Durability        store.Durability
	Workers           int // frame scoring workers, default GOMAXPROCS
	QueueSize         int // frame jobs queued before events answer 503, default 4096
	// MaxConnsPerIP caps concurrent connections from one address; default 512,
	// negative for no limit. A connection over the cap is answered 429 and closed.
	MaxConnsPerIP int
	// ReadTimeout bounds reading one request (headers and body), WriteTimeout
	// writing one response, IdleTimeout a keep-alive connection waiting for
	// its next request. Defaults 10s, 10s and 120s.
	ReadTimeout, WriteTimeout, IdleTimeout time.Duration
	Logger                                 *slog.Logger     // nil: slog.Default()
	Now                                    func() time.Time // nil: time.Now
}

// Defaults of Config.
const (
	DefaultAddr          = "127.0.0.1:8080"
	DefaultEmbeddingDim  = 512
	DefaultQueueSize     = 4096
	DefaultMaxConnsPerIP = 512
	DefaultReadTimeout   = 10 * time.Second
	DefaultWriteTimeout  = 10 * time.Second
	DefaultIdleTimeout   = 120 * time.Second

	// headerBufferSize is fasthttp's read buffer, which also bounds the
	// request line plus headers: larger headers are answered 431.
	headerBufferSize = 8 << 10
)

// Errors returned by New.
var (
	ErrConfig = errors.New("server: invalid configuration")
)

// Server is the countersign HTTP service. It is safe for concurrent use.
type Server struct {
	cfg     Config
	db      *store.DB
	log     *slog.Logger
	now     func() time.Time
	dim     int
	tlsConf *tls.Config

	hs           *fasthttp.Server
	ctxPool      sync.Pool // *reqCtx
	metrics      *serverMetrics
	frames       *framePool
	orgs         orgCache
	sessionLocks sessionLocks

	ready    atomic.Bool // workers running
	draining atomic.Bool // Shutdown called
	shutOnce sync.Once

	// storeDead is set, and failed closed, once the store has failed for
	// good (see storeFatal and Failed).
	storeDead     atomic.Bool
	storeDeadOnce sync.Once
	failed        chan struct{}

	// testHook, when set by a test, runs before each request is routed (to
	// make a handler panic or stall). Always nil in production.
	testHook func(*fasthttp.RequestCtx)
}

// New prepares a server over an open store and starts its frame-scoring
// workers. It does not listen: call Serve or ListenAndServe.
func New(cfg Config, db *store.DB) (*Server, error) {
	if db == nil {
		return nil, fmt.Errorf("%w: nil store", ErrConfig)
	}
	if cfg.Addr == "" {
		cfg.Addr = DefaultAddr
	}
	if cfg.EmbeddingDim == 0 {
		cfg.EmbeddingDim = DefaultEmbeddingDim
	}
	if cfg.EmbeddingDim < 1 || cfg.EmbeddingDim > maxEmbeddingDim {
		return nil, fmt.Errorf("%w: embedding dimension %d is not in [1, %d]", ErrConfig, cfg.EmbeddingDim, maxEmbeddingDim)
	}
	if cfg.Workers <= 0 {
		cfg.Workers = runtime.GOMAXPROCS(0)
	}
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = DefaultQueueSize
	}
	if cfg.MaxConnsPerIP == 0 {
		cfg.MaxConnsPerIP = DefaultMaxConnsPerIP
	}
	if cfg.ReadTimeout == 0 {
		cfg.ReadTimeout = DefaultReadTimeout
	}
	if cfg.WriteTimeout == 0 {
		cfg.WriteTimeout = DefaultWriteTimeout
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Server{
		cfg:    cfg,
		db:     db,
		log:    cfg.Logger,
		now:    cfg.Now,
		dim:    cfg.EmbeddingDim,
		failed: make(chan struct{}),
	}
	s.sessionLocks.seed = maphash.MakeSeed()
	var err error
	if s.tlsConf, err = loadTLS(&cfg); err != nil {
		return nil, err
	}
	s.orgs.init(db, s.dim)
	s.metrics = newServerMetrics(s)
	s.ctxPool.New = func() any { return newReqCtx(s) }
	s.hs = &fasthttp.Server{
		Handler:                      s.handle,
		ErrorHandler:                 s.handleTransportError,
		HeaderReceived:               headerReceived,
		ExpectHandler:                s.handleExpect,
		Name:                         "countersign",
		ReadBufferSize:               headerBufferSize,
		ReadTimeout:                  cfg.ReadTimeout,
		WriteTimeout:                 cfg.WriteTimeout,
		IdleTimeout:                  cfg.IdleTimeout,
		MaxRequestBodySize:           limitMax,
		CloseOnShutdown:              true,
		DisablePreParseMultipartForm: true,
		SecureErrorLogMessage:        true,
		Logger:                       fasthttpLogger{s.log},
	}
	s.frames = newFramePool(s, cfg.Workers, cfg.QueueSize)
	s.ready.Store(true)
	s.log.Info("server configured",
		"json", sonicMode(),
		"embeddingDim", s.dim,
		"workers", cfg.Workers,
		"queueSize", cfg.QueueSize,
		"durability", cfg.Durability.String(),
		"tls", s.tlsConf != nil,
		"clientAuth", clientAuthName(s.tlsConf))
	return s, nil
}

// sonicMode says which JSON implementation sonic runs: its JIT decoder
// (native), its optimized interpreter, or the encoding/json fallback on
// platforms it does not support.
func sonicMode() string {
	if sonic.APIKind != sonic.UseSonicJSON {
		return "sonic fallback (encoding/json)"
	}
	if os.Getenv("SONIC_USE_OPTDEC") == "1" {
		return "sonic native (optdec)"
	}
	return "sonic native (JIT)"
}

// Handler returns the request handler, for serving over a listener the
// caller manages (tests use fasthttputil's in-memory listener). Transport
// level errors (oversized bodies and headers, timeouts) are answered by the
// fasthttp.Server that Serve uses; use Serve to get them as JSON too.
func (s *Server) Handler() fasthttp.RequestHandler { return s.handle }

// Serve accepts connections on ln until Shutdown. When the configuration has
// a certificate, ln is wrapped in TLS (with client certificate verification
// as configured); connections over MaxConnsPerIP are answered 429.
func (s *Server) Serve(ln net.Listener) error {
	if s.tlsConf != nil {
		ln = tls.NewListener(ln, s.tlsConf)
	}
	// IP connections are always wrapped, capped or not: the wrapper also
	// closes a connection refused mid-request gently (closeLingering) and
	// refuses TLS on a plain port. (In-memory and unix ones are not.)
	ln = newPerIPListener(ln, s.cfg.MaxConnsPerIP, s.metrics)
	return s.hs.Serve(ln)
}

// ListenAndServe listens on Config.Addr and serves until Shutdown.
func (s *Server) ListenAndServe() error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return err
	}
	s.log.Info("listening", "addr", ln.Addr().String(), "tls", s.tlsConf != nil)
	return s.Serve(ln)
}

// Shutdown stops accepting connections, waits for in-flight requests to be
// answered, then stops the frame workers after they have scored every queued
// job. /readyz answers 503 from the moment it is called. It returns ctx's
// error if ctx ends first.
func (s *Server) Shutdown(ctx context.Context) error {
	var err error
	s.shutOnce.Do(func() {
		s.draining.Store(true)
		start := time.Now()
		err = s.hs.ShutdownWithContext(ctx)
		s.log.Info("requests drained", "took", time.Since(start).String(), "err", err)
		start = time.Now()
		if werr := s.frames.stop(ctx); err == nil {
			err = werr
		}
		s.ready.Store(false)
		s.log.Info("frame workers stopped", "took", time.Since(start).String())
	})
	return err
}

// Ready reports whether the server accepts traffic: the workers run,
// Shutdown has not been called, and the store is open and has not failed.
func (s *Server) Ready() bool {
	return s.ready.Load() && !s.draining.Load() && !s.storeDead.Load() && s.storeOpen()
}

// Failed returns a channel that is closed when the store has failed for
// good: Pebble refused to go on after a write to its log failed. Such a
// write may already be visible to reads without being durable (an events
// batch, a decision and its idempotency record), so from then on the server
// answers 503 store_unavailable on every route that reads or writes the
// store, /readyz answers 503, and the frame workers stop. The process should
// exit and be restarted, which recovers the store from its log: countersign
// serve does exactly that.
func (s *Server) Failed() <-chan struct{} { return s.failed }

// storeFatal reports whether a recovered panic is the store giving up: the
// store panics with an error wrapping store.ErrFatal when Pebble calls its
// logger's Fatalf, the one panic that means the database must not be used
// any more.
func storeFatal(p any) bool {
	err, ok := p.(error)
	return ok && errors.Is(err, store.ErrFatal)
}

// markStoreDead records that the store failed for good (see Failed).
func (s *Server) markStoreDead(p any) {
	s.storeDeadOnce.Do(func() {
		s.storeDead.Store(true)
		s.log.Error("the store failed and must not be used again; answering 503 until restarted", "panic", fmt.Sprint(p))
		close(s.failed)
	})
}

// storeOpen probes the store with the cheapest read there is: an
// organization that does not exist answers ErrNotFound while the store is
// open, ErrClosed once it is closed.
func (s *Server) storeOpen() bool {
	_, err := s.db.OrgByID("0000000000000000")
	return !errors.Is(err, store.ErrClosed) && !errors.Is(err, store.ErrFatal)
}

// handle is the fasthttp handler: it routes, and answers 500 (keeping the
// server up) if a handler panics.
func (s *Server) handle(ctx *fasthttp.RequestCtx) {
	start := time.Now()
	c := s.ctxPool.Get().(*reqCtx)
	c.ctx = ctx
	ok := false
	defer func() {
		if ok {
			return
		}
		p := recover()
		s.metrics.panics.Inc()
		s.log.Error("handler panic", "route", c.route.String(), "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
		ctx.Response.Reset()
		ctx.SetContentType("application/json")
		status, body := fasthttp.StatusInternalServerError, internalErrorBody
		if storeFatal(p) {
			// Not a bug in a handler: a write could not be made durable.
			// Fail closed, as for any write the store refuses.
			s.markStoreDead(p)
			status, body = errStoreUnavailable.status, storeUnavailableBody
			ctx.Response.Header.Set(fasthttp.HeaderRetryAfter, "1")
		}
		ctx.SetStatusCode(status)
		ctx.SetBody(body)
		s.metrics.observe(c.route, status, start)
		// c is dropped, not pooled: its state is unknown.
	}()
	s.dispatch(c, ctx)
	s.metrics.observe(c.route, ctx.Response.StatusCode(), start)
	ok = true
	c.release()
	s.ctxPool.Put(c)
}

var (
	internalErrorBody    = appendError(nil, errInternal, nil)
	storeUnavailableBody = appendError(nil, errStoreUnavailable, nil)
)

// headerReceived applies the route's body limit as soon as the headers are
// in, so that fasthttp answers an announced oversized body (through
// handleTransportError) before reading it.
func headerReceived(h *fasthttp.RequestHeader) fasthttp.RequestConfig {
	return fasthttp.RequestConfig{MaxRequestBodySize: routeOfURI(h.RequestURI()).bodyLimit()}
}

// routeOfURI classifies a raw request URI (before percent-decoding) for its
// body limit. A path that only matches a route after decoding gets limitMax
// here, and the handler applies the route's limit once the body is read.
func routeOfURI(uri []byte) route {
	for i, ch := range uri {
		if ch == '?' || ch == '#' {
			uri = uri[:i]
			break
		}
	}
	r, _ := matchRoute(uri)
	return r
}

// handleTransportError answers what fasthttp refused before the handler ran,
// in the native error envelope. fasthttp closes the connection afterwards.
func (s *Server) handleTransportError(ctx *fasthttp.RequestCtx, err error) {
	var e *apiError
	var msg []byte
	var small *fasthttp.ErrSmallBuffer
	var netErr net.Error
	r := routeOfURI(ctx.Request.Header.RequestURI())
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		e = errBodyTooLarge
		// fasthttp resets the request when a chunked body runs over, so
		// the route (and its limit) is unknown then: keep the catalog's
		// sentence rather than name another route's limit.
		if r != routeUnknown {
			msg = append(msg, "The request body is larger than "...)
			msg = appendSize(msg, r.bodyLimit())
			msg = append(msg, ", the limit of this route."...)
		}
	case errors.As(err, &small):
		e = errHeadersTooLarge
		msg = append(msg, "The request line and headers are larger than "...)
		msg = appendSize(msg, headerBufferSize)
		msg = append(msg, '.')
	case errors.As(err, &netErr) && netErr.Timeout():
		e = errRequestTimeout
	default:
		e = errBadRequest
		if why := transportReason(err); why != "" {
			msg = append(msg, "The request could not be parsed: "...)
			msg = append(msg, why...)
			msg = append(msg, '.')
		}
	}
	ctx.Response.Reset()
	ctx.SetStatusCode(e.status)
	ctx.SetContentType("application/json")
	ctx.SetBody(appendError(nil, e, msg))
	s.metrics.observe(r, e.status, time.Now())
	if e != errRequestTimeout {
		// fasthttp closes the connection after this answer, perhaps with
		// the client still sending (a body over the limit): drain before
		// closing, or the kernel resets the connection and the client
		// loses the answer (closeLingering). A silent client is not
		// waited for again.
		if lc, ok := ctx.Conn().(interface{ lingerOnClose() }); ok {
			lc.lingerOnClose()
		}
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

// handleExpect answers "Expect: 100-continue" before the body is sent: an
// announced body over the route's limit gets the JSON 413 at once (fasthttp
// writes the response set here, without calling the handler, and closes the
// connection); anything else is invited to send its body.
func (s *Server) handleExpect(ctx *fasthttp.RequestCtx) int {
	r := routeOfURI(ctx.Request.Header.RequestURI())
	if ctx.Request.Header.ContentLength() <= r.bodyLimit() {
		return fasthttp.StatusContinue
	}
	msg := append([]byte("The request body is larger than "), appendSize(nil, r.bodyLimit())...)
	msg = append(msg, ", the limit of this route."...)
	ctx.SetContentType("application/json")
	ctx.SetBody(appendError(nil, errBodyTooLarge, msg))
	s.metrics.observe(r, errBodyTooLarge.status, time.Now())
	// A client may send its body without waiting for the 100: drain it
	// before the close, as after any refusal mid-request.
	if lc, ok := ctx.Conn().(interface{ lingerOnClose() }); ok {
		lc.lingerOnClose()
	}
	return errBodyTooLarge.status
}

// fasthttpLogger sends fasthttp's own log lines to slog.
type fasthttpLogger struct{ l *slog.Logger }

func (f fasthttpLogger) Printf(format string, args ...any) {
	f.l.Warn(fmt.Sprintf(format, args...), "component", "fasthttp")
}

// loadTLS builds the TLS configuration Serve wraps listeners with.
func loadTLS(cfg *Config) (*tls.Config, error) {
	if (cfg.TLSCert == "") != (cfg.TLSKey == "") {
		return nil, fmt.Errorf("%w: TLS needs both a certificate and a key", ErrConfig)
	}
	if cfg.TLSCert == "" {
		if cfg.ClientCA != "" || cfg.RequireClientCert {
			return nil, fmt.Errorf("%w: client certificates need TLS (a certificate and a key)", ErrConfig)
		}
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	conf := &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS12,
	}
	switch {
	case cfg.ClientCA != "":
		pem, err := os.ReadFile(cfg.ClientCA)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrConfig, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%w: %s holds no PEM certificate", ErrConfig, cfg.ClientCA)
		}
		conf.ClientCAs = pool
		conf.ClientAuth = tls.VerifyClientCertIfGiven
		if cfg.RequireClientCert {
			conf.ClientAuth = tls.RequireAndVerifyClientCert
		}
	case cfg.RequireClientCert:
		return nil, fmt.Errorf("%w: requiring client certificates needs a client CA bundle", ErrConfig)
	}
	return conf, nil
}

func clientAuthName(c *tls.Config) string {
	switch {
	case c == nil || c.ClientAuth == tls.NoClientCert:
		return "none"
	case c.ClientAuth == tls.RequireAndVerifyClientCert:
		return "required"
	default:
		return "verified-if-given"
	}
}
