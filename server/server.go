// Package server is countersign's HTTP service: New, Serve and Shutdown,
// and the one switch on the path's prefix that hands each request to its
// surface (server/native, server/admin, server/device). The surfaces share
// the HTTP core (server/httpd: pooled contexts, routes, the error catalog,
// the listener, the hub),
// the JSON checks and encoders (server/jsonwire) and the compiled
// organizations (server/tenant); the service routes (/healthz, /readyz,
// /metrics, /openapi.json) are served here.
//
// Lifecycle: New (opens nothing: the caller owns the store), Serve or
// ListenAndServe, then Shutdown, which drains in-flight requests and lets the
// workers finish every queued job before it returns; the caller closes the
// store afterwards. Failed tells the caller when the store has failed for
// good and the process should exit.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bytedance/sonic"
	"github.com/valyala/fasthttp"

	"github.com/countersign/countersign/engine/biometric"
	"github.com/countersign/countersign/server/admin"
	"github.com/countersign/countersign/server/device"
	"github.com/countersign/countersign/server/httpd"
	"github.com/countersign/countersign/server/ivalt"
	"github.com/countersign/countersign/server/native"
	"github.com/countersign/countersign/server/tenant"
	"github.com/countersign/countersign/server/unloq"
	"github.com/countersign/countersign/server/webhook"
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
	// MaxWaitingPerIP caps the connections of one address stalled before
	// their first request header block (slow or silent clients): one
	// more closes the oldest of them that is a second old with 408, and
	// at MaxConnsPerIP a newcomer closes the oldest of any age, so a slow
	// client cannot fill MaxConnsPerIP and shut out its neighbours.
	// Default httpd.DefaultMaxWaitingPerIP (64), negative for no limit.
	MaxWaitingPerIP int
	// MaxInFlight bounds the requests of the API routes served at once;
	// past it a request is answered 503 overloaded with Retry-After before
	// its body is read. Default httpd.DefaultMaxInFlight, negative for no
	// bound.
	MaxInFlight int
	// UnloqPingInterval is how often a streamed UNLOQ authenticate is
	// sent a ping; default unloq.DefaultPingInterval.
	UnloqPingInterval time.Duration
	// PublicURL is where users' browsers reach this server (scheme, host
	// and an optional path prefix, e.g. https://auth.example.com): the
	// links e-mailed for UNLOQ's EMAIL method are made from it. Empty: from
	// the scheme and Host header of the backend's request, which is right
	// only when the backend calls the server at the address users reach.
	// Checked by ParsePublicURL.
	PublicURL string
	// ReadTimeout bounds reading one request (headers and body), WriteTimeout
	// writing one response, IdleTimeout a keep-alive connection waiting for
	// its next request. Defaults 10s, 10s and 120s.
	ReadTimeout, WriteTimeout, IdleTimeout time.Duration
	// Sealer seals and opens the secrets the store keeps (webhook signing
	// secrets): the master key's. Without one, webhooks cannot be
	// created and none are delivered.
	Sealer *store.Sealer
	// WebhookBackoff is the wait after a delivery's first failed attempt,
	// doubled after each later one; default webhook.DefaultBackoffBase.
	WebhookBackoff time.Duration
	Logger         *slog.Logger     // nil: slog.Default()
	Now            func() time.Time // nil: time.Now
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
)

// Errors returned by New.
var (
	ErrConfig = errors.New("server: invalid configuration")
)

// Server is the countersign HTTP service. It is safe for concurrent use.
type Server struct {
	cfg Config
	db  *store.DB
	log *slog.Logger
	dim int

	core    *httpd.Server
	orgs    *tenant.Cache
	native  *native.Surface
	admin   *admin.Surface
	device  *device.Surface
	unloq   *unloq.Surface
	ivalt   *ivalt.Surface
	service service
	// webhooks delivers the outbox; nil without a Sealer.
	webhooks *webhook.Sender

	ready    atomic.Bool // workers running
	draining atomic.Bool // Shutdown called
	shutOnce sync.Once

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
	if cfg.EmbeddingDim < 1 || cfg.EmbeddingDim > biometric.MaxDim {
		return nil, fmt.Errorf("%w: embedding dimension %d is not in [1, %d]", ErrConfig, cfg.EmbeddingDim, biometric.MaxDim)
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
	publicURL, err := ParsePublicURL(cfg.PublicURL)
	if err != nil {
		return nil, fmt.Errorf("%w: public URL %v", ErrConfig, err)
	}
	tlsConf, err := httpd.LoadTLS(httpd.TLSFiles{
		Cert: cfg.TLSCert, Key: cfg.TLSKey, ClientCA: cfg.ClientCA, RequireClientCert: cfg.RequireClientCert,
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	s := &Server{cfg: cfg, db: db, log: cfg.Logger, dim: cfg.EmbeddingDim}
	s.core = httpd.New(httpd.Config{
		Surface:         s.surface,
		Envelope:        native.AppendError,
		Hook:            s.runTestHook,
		TLS:             tlsConf,
		MaxConnsPerIP:   cfg.MaxConnsPerIP,
		MaxInFlight:     cfg.MaxInFlight,
		MaxWaitingPerIP: cfg.MaxWaitingPerIP,
		ReadTimeout:     cfg.ReadTimeout,
		WriteTimeout:    cfg.WriteTimeout,
		IdleTimeout:     cfg.IdleTimeout,
		Logger:          cfg.Logger,
		Store:           db,
	})
	s.orgs = tenant.NewCache(db, s.dim)
	s.service.init(s)
	s.native = native.New(native.Deps{
		Core:         s.core,
		DB:           db,
		Orgs:         s.orgs,
		EmbeddingDim: s.dim,
		Workers:      cfg.Workers,
		QueueSize:    cfg.QueueSize,
		Now:          cfg.Now,
	})
	s.admin = admin.New(admin.Deps{Core: s.core, DB: db, Orgs: s.orgs, Now: cfg.Now, Sealer: cfg.Sealer,
		AppendDecision: native.AppendDecision})
	s.device = device.New(device.Deps{Core: s.core, DB: db, Orgs: s.orgs, Now: cfg.Now})
	// Every approval change from here on writes its events to the outbox.
	// Deliveries run on the wall clock whatever Config.Now is: receivers,
	// their timeouts and webhook-timestamp live in real time.
	db.SetEventBodies(webhook.AppendBody)
	// What the sweep expires wakes the requests held on it, as a
	// decision made over HTTP does.
	db.SetApprovalExpired(func(org store.OrgID, approvalID, userID string) {
		hub := s.core.Hub()
		hub.Publish(httpd.TopicKey(httpd.TopicApproval, org.String(), approvalID))
		hub.Publish(httpd.TopicKey(httpd.TopicUserApprovals, org.String(), userID))
	})
	if cfg.Sealer != nil {
		s.webhooks = webhook.New(webhook.Config{DB: db, Sealer: cfg.Sealer, BackoffBase: cfg.WebhookBackoff,
			Metrics: s.core.Metrics().Set, Logger: cfg.Logger.With("component", "webhooks")})
		s.webhooks.Start()
	}
	s.unloq = unloq.New(unloq.Deps{Core: s.core, DB: db, Orgs: s.orgs, Now: cfg.Now,
		PingInterval: cfg.UnloqPingInterval, PublicURL: publicURL})
	s.ivalt = ivalt.New(ivalt.Deps{Core: s.core, DB: db, Orgs: s.orgs, Now: cfg.Now})
	s.ready.Store(true)
	s.log.Info("server configured",
		"json", JSONMode(),
		"embeddingDim", s.dim,
		"workers", cfg.Workers,
		"queueSize", cfg.QueueSize,
		"durability", cfg.Durability.String(),
		"tls", tlsConf != nil,
		"clientAuth", httpd.ClientAuthName(tlsConf))
	return s, nil
}

// surface is the one switch on the path's prefix: the surface that serves
// a path. A new surface plugs in here, as a package with a Route and a Serve
// (httpd.Surface), built in New.
func (s *Server) surface(path []byte) httpd.Surface {
	switch {
	case string(path) == "/v1/device", hasPrefix(path, "/v1/device/"):
		return s.device
	case string(path) == "/admin/v1", hasPrefix(path, "/admin/v1/"):
		return s.admin
	case string(path) == "/unloq/v1", hasPrefix(path, "/unloq/v1/"):
		return s.unloq
	case string(path) == ivalt.Prefix, hasPrefix(path, ivalt.Prefix+"/"):
		return s.ivalt
	case hasPrefix(path, "/v1/"), hasPrefix(path, "/api/v1/"):
		return s.native
	}
	return &s.service // /healthz, /readyz, /metrics, /openapi.json, or nothing
}

// hasPrefix is bytes.HasPrefix for a constant prefix.
func hasPrefix(b []byte, prefix string) bool {
	return len(b) >= len(prefix) && string(b[:len(prefix)]) == prefix
}

func (s *Server) runTestHook(ctx *fasthttp.RequestCtx) {
	if s.testHook != nil {
		s.testHook(ctx)
	}
}

// JSONMode says which JSON implementation sonic runs: its JIT decoder
// (native), its optimized interpreter, or the encoding/json fallback on
// platforms it does not support. The service's throughput differs a lot
// between them, so serve logs it at start.
func JSONMode() string {
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
func (s *Server) Handler() fasthttp.RequestHandler { return s.core.Handler() }

// Serve accepts connections on ln until Shutdown. When the configuration has
// a certificate, ln is wrapped in TLS (with client certificate verification
// as configured); connections over MaxConnsPerIP are answered 429.
func (s *Server) Serve(ln net.Listener) error { return s.core.Serve(ln) }

// ListenAndServe listens on Config.Addr and serves until Shutdown.
func (s *Server) ListenAndServe() error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return err
	}
	s.log.Info("listening", "addr", ln.Addr().String(), "tls", s.cfg.TLSCert != "")
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
		err = s.core.Shutdown(ctx)
		s.log.Info("requests drained", "took", time.Since(start).String(), "err", err)
		start = time.Now()
		if werr := s.native.Stop(ctx); err == nil {
			err = werr
		}
		s.ready.Store(false)
		s.log.Info("frame workers stopped", "took", time.Since(start).String())
		if s.webhooks != nil {
			start = time.Now()
			if werr := s.webhooks.Stop(ctx); err == nil {
				err = werr
			}
			s.log.Info("webhook deliveries stopped", "took", time.Since(start).String())
		}
	})
	return err
}

// Ready reports whether the server accepts traffic: the workers run,
// Shutdown has not been called, and the store is open and has not failed.
func (s *Server) Ready() bool {
	return s.ready.Load() && !s.draining.Load() && !s.core.StoreDead() && s.storeOpen()
}

// Failed returns a channel that is closed when the store has failed for
// good: Pebble refused to go on after a write to its log failed. Such a
// write may already be visible to reads without being durable (an events
// batch, a decision and its idempotency record), so from then on the server
// answers 503 store_unavailable on every route that reads or writes the
// store, /readyz answers 503, and the frame workers stop. The process should
// exit and be restarted, which recovers the store from its log: countersign
// serve does exactly that.
func (s *Server) Failed() <-chan struct{} { return s.core.Failed() }

// storeOpen probes the store with the cheapest read there is: an
// organization that does not exist answers ErrNotFound while the store is
// open, ErrClosed once it is closed. Not the zero id, which the store
// answers ErrNotFound without reading; any other will do, and if an
// organization happens to have it, the store is open all the same.
func (s *Server) storeOpen() bool {
	_, err := s.db.OrgByID(store.OrgID{0xff})
	return !errors.Is(err, store.ErrClosed) && !errors.Is(err, store.ErrFatal)
}

// ParsePublicURL checks a Config.PublicURL and returns it without a
// trailing slash: an absolute http or https URL with a host, and neither
// query, fragment nor user information ("" is kept: no public URL).
func ParsePublicURL(s string) (string, error) {
	if s == "" {
		return "", nil
	}
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return "", fmt.Errorf("%q: %v", s, err)
	case u.Scheme != "http" && u.Scheme != "https":
		return "", fmt.Errorf("%q: the scheme must be http or https", s)
	case u.Host == "":
		return "", fmt.Errorf("%q: no host", s)
	case u.RawQuery != "" || u.Fragment != "" || u.ForceQuery || u.User != nil || u.Opaque != "":
		return "", fmt.Errorf("%q: only a scheme, a host and a path are allowed", s)
	}
	return strings.TrimRight(s, "/"), nil
}
