package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"

	"github.com/countersign/countersign/server"
	"github.com/countersign/countersign/server/webhook"
	"github.com/countersign/countersign/store"
)

// cmdServe opens the store, serves the API until SIGINT or SIGTERM, then
// drains in-flight requests and closes the store, logging each step and how
// long it took.
func cmdServe(args []string, e *env) error {
	c := newCommand("serve", "countersign serve --data DIR [--addr 127.0.0.1:8080] [flags]",
		"Serves the countersign API from the store in DIR (create it with 'countersign init'). "+
			"GET /readyz answers 200 once requests are accepted. SIGINT or SIGTERM drains in-flight "+
			"requests, finishes queued frame scoring, and closes the store cleanly. If the store fails "+
			"(a write cannot be made durable) it answers 503, drains and exits 1, so that a restart "+
			"recovers the store from its log.")
	data := c.String("data", "DIR", "", "data directory holding the store (required)")
	addr := c.String("addr", "HOST:PORT", "127.0.0.1:8080", "listen address")
	keyFile := c.String("master-key-file", "FILE", "", masterKeyUsage+"; refused if readable by group or others, or if a named file is missing")
	dim := c.Int("embedding-dim", "D", 512, "components of every face embedding (one per deployment)")
	durability := c.String("durability", "sync|relaxed", "sync", "sync: every acknowledged write is fsynced; relaxed: for experiments only")
	tlsCert := c.String("tls-cert", "FILE", "", "PEM certificate chain; serve HTTPS (with --tls-key)")
	tlsKey := c.String("tls-key", "FILE", "", "PEM private key of --tls-cert")
	clientCA := c.String("client-ca", "FILE", "", "PEM bundle client certificates must chain to (mTLS)")
	requireClientCert := c.Bool("require-client-cert", false, "refuse TLS connections without a client certificate")
	workers := c.Int("workers", "N", 0, "frame scoring workers (default GOMAXPROCS)")
	queue := c.Int("queue", "N", 4096, "frame jobs queued before events answer 503")
	ttl := c.Duration("session-ttl", "DURATION", store.DefaultSessionTTL, "how long a session accepts events and can be validated")
	idemTTL := c.Duration("idempotency-ttl", "DURATION", store.DefaultIdempotencyTTL,
		"how long a validate's Idempotency-Key is remembered after its decision (0: for ever)")
	walSync := c.Duration("wal-sync-interval", "DURATION", store.DefaultWALSyncInterval,
		"least time between two log fsyncs, so concurrent commits share one (0: no wait; see PERF.md)")
	walSyncMethod := c.String("wal-sync", "auto|io_uring|fdatasync", "auto",
		"how log and table syncs are issued: io_uring lets requests run while a sync is in flight (auto: io_uring where the kernel allows it; see PERF.md)")
	sessionCacheMB := c.Int("session-cache-mb", "N", store.DefaultSessionCacheBytes>>20,
		"memory for the cache validate reads sessions, fields and templates from (0: off)")
	maxConns := c.Int("max-conns-per-ip", "N", 0, "concurrent connections per client IP (default: the server's)")
	maxWaiting := c.Int("max-waiting-per-ip", "N", 0, "connections per client IP whose first request has not arrived; past it the oldest is closed (default: the server's)")
	maxInFlight := c.Int("max-in-flight", "N", 0, "API requests served at once; past it 503 overloaded (default: the server's)")
	readTimeout := c.Duration("read-timeout", "DURATION", 0, "time to read one request (default: the server's)")
	writeTimeout := c.Duration("write-timeout", "DURATION", 0, "time to write one response (default: the server's)")
	idleTimeout := c.Duration("idle-timeout", "DURATION", 0, "keep-alive idle time (default: the server's)")
	shutdownTimeout := c.Duration("shutdown-timeout", "DURATION", 30*time.Second, "how long SIGTERM waits for in-flight requests")
	sweepEvery := c.Duration("sweep-every", "DURATION", time.Minute, "how often expired sessions, approvals, activation codes and idempotency keys are swept")
	webhookBackoff := c.Duration("webhook-backoff", "DURATION", webhook.DefaultBackoffBase,
		"wait after a webhook delivery's first failed attempt, doubled after each later one (8 attempts)")
	publicURL := c.String("public-url", "URL", "", "where users' browsers reach this server (e.g. https://auth.example.com): the links e-mailed for UNLOQ's EMAIL method start with it (default: the scheme and host the backend called)")
	pprofAddr := c.String("pprof", "HOST:PORT", "", "serve Go's profiler (net/http/pprof) on this separate address, for profiling under load; keep it on loopback (default: off)")
	logFormat := c.String("log-format", "text|json", "text", "log format on stderr")
	logLevel := c.String("log-level", "debug|info|warn|error", "info", "least severe level logged")
	if err := e.parse(c, args); err != nil {
		return err
	}
	if *data == "" {
		return usagef("--data is required")
	}
	dur, err := store.ParseDurability(*durability)
	if err != nil {
		return usagef("--durability %q: want sync or relaxed", *durability)
	}
	walMethod, walErr := store.ParseWALSyncMethod(*walSyncMethod)
	switch {
	case (*tlsCert == "") != (*tlsKey == ""):
		return usagef("--tls-cert and --tls-key go together")
	case *tlsCert == "" && (*clientCA != "" || *requireClientCert):
		return usagef("--client-ca and --require-client-cert need --tls-cert and --tls-key")
	case *requireClientCert && *clientCA == "":
		return usagef("--require-client-cert needs --client-ca")
	case *dim <= 0:
		return usagef("--embedding-dim must be positive")
	case *workers < 0 || *queue < 0 || *maxConns < 0 || *maxWaiting < 0 || *maxInFlight < 0 || *sessionCacheMB < 0:
		return usagef("--workers, --queue, --max-conns-per-ip, --max-waiting-per-ip, --max-in-flight and --session-cache-mb must not be negative")
	case *ttl <= 0:
		return usagef("--session-ttl must be positive")
	case *webhookBackoff <= 0:
		return usagef("--webhook-backoff must be positive")
	case *idemTTL < 0:
		return usagef("--idempotency-ttl must not be negative")
	case *walSync < 0:
		return usagef("--wal-sync-interval must not be negative")
	case walErr != nil:
		return usagef("--wal-sync %q: want auto, io_uring or fdatasync", *walSyncMethod)
	case *sweepEvery <= 0:
		return usagef("--sweep-every must be positive")
	}
	if _, err := server.ParsePublicURL(*publicURL); err != nil {
		return usagef("--public-url %v", err)
	}
	log, err := newLogger(e, *logFormat, *logLevel)
	if err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	start := time.Now()
	log.Info("starting countersign", "go", runtime.Version(), "gomaxprocs", runtime.GOMAXPROCS(0),
		"sonic", server.JSONMode(), "pid", os.Getpid())

	if ok, err := hasStore(*data); err != nil {
		return err
	} else if !ok {
		return fmt.Errorf("%s holds no countersign store; create one with 'countersign init --data %s'", *data, shellQuote(*data))
	}
	t := time.Now()
	// An explicit --master-key-file that is missing is refused: making a new
	// key there would leave every secret sealed under the old one unreadable.
	// DIR's own key file is created for stores made before it existed.
	keyPath := masterKeyPath(*data, *keyFile)
	sealer, keyCreated, err := masterKey(keyPath, *keyFile == "")
	if err != nil {
		if errors.Is(err, store.ErrMasterKeyMissing) {
			return fmt.Errorf("%w (check --master-key-file, %s)", err, envName("master-key-file"))
		}
		return err
	}
	if keyCreated {
		log.Warn("created a master key file for a store that had none; back it up with the data directory",
			"path", keyPath, "keyID", sealer.KeyIDString())
	}
	log.Info("loaded master key", "path", keyPath, "keyID", sealer.KeyIDString(), "duration", time.Since(t))

	t = time.Now()
	walSyncInterval := *walSync
	if walSyncInterval == 0 {
		walSyncInterval = -1 // the store reads zero as its default
	}
	idempotencyTTL := *idemTTL
	if idempotencyTTL == 0 {
		idempotencyTTL = -1 // for ever; the store reads zero as its default
	}
	db, err := store.Open(store.Options{Dir: *data, Durability: dur, SessionTTL: *ttl, IdempotencyTTL: idempotencyTTL,
		WALSyncInterval: walSyncInterval, WALSync: walMethod, SessionCacheBytes: sessionCacheBytes(*sessionCacheMB),
		Logger: log, Sealer: sealer})
	if err != nil {
		return openError(*data, err)
	}
	log.Info("opened store", "dir", *data, "durability", dur.String(), "walSync", db.WALSyncMethod().String(),
		"sessionTTL", ttl.String(), "duration", time.Since(t))

	closeStore := func() error {
		t := time.Now()
		if err := db.Close(); err != nil {
			// A failed store's close is bounded (store.ErrCloseTimeout):
			// the process exits non-zero, and the next start recovers
			// every acknowledged write from the log.
			log.Error("closing store", "error", err, "duration", time.Since(t))
			return fmt.Errorf("closing the store: %w", err)
		}
		log.Info("closed store", "duration", time.Since(t))
		return nil
	}

	srv, err := server.New(server.Config{
		Addr:              *addr,
		TLSCert:           *tlsCert,
		TLSKey:            *tlsKey,
		ClientCA:          *clientCA,
		RequireClientCert: *requireClientCert,
		EmbeddingDim:      *dim,
		Durability:        dur,
		Workers:           *workers,
		QueueSize:         *queue,
		MaxConnsPerIP:     *maxConns,
		MaxWaitingPerIP:   *maxWaiting,
		MaxInFlight:       *maxInFlight,
		ReadTimeout:       *readTimeout,
		WriteTimeout:      *writeTimeout,
		IdleTimeout:       *idleTimeout,
		Sealer:            sealer,
		WebhookBackoff:    *webhookBackoff,
		PublicURL:         *publicURL,
		Logger:            log.With("component", "server"),
	}, db)
	if err != nil {
		_ = closeStore()
		return fmt.Errorf("server: %w", err)
	}

	sweepStop := make(chan struct{})
	sweepDone := make(chan struct{})
	go func() {
		defer close(sweepDone)
		db.RunSweeper(sweepStop, *sweepEvery)
	}()

	if *pprofAddr != "" {
		if err := servePprof(*pprofAddr, log); err != nil {
			close(sweepStop)
			<-sweepDone
			_ = closeStore()
			return err
		}
	}

	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.ListenAndServe() }()
	scheme := "http"
	if *tlsCert != "" {
		scheme = "https"
	}
	log.Info("serving", "addr", *addr, "url", scheme+"://"+*addr, "mtls", *clientCA != "",
		"embeddingDim", *dim, "startup", time.Since(start))

	var failed error
	select {
	case <-ctx.Done():
		log.Info("received signal; draining in-flight requests", "timeout", shutdownTimeout.String())
	case err := <-serveErr:
		// The listener failed (address in use, bad certificate) or closed.
		failed = err
		if failed == nil {
			failed = errors.New("server stopped serving")
		}
		log.Error("serving failed", "error", failed)
	case <-srv.Failed():
		// A write to the store's disk failed (the disk is full, say), or
		// Pebble gave up: the store must not be used again by this
		// process. Exiting lets a supervisor restart it, and reopening
		// recovers the store from its log.
		failed = errFailedStore(db)
		log.Error("store failed; shutting down", "error", failed)
	}
	stop() // a second signal now kills the process the default way

	t = time.Now()
	sctx, cancel := context.WithTimeout(context.Background(), *shutdownTimeout)
	if err := srv.Shutdown(sctx); err != nil {
		log.Error("draining", "error", err, "duration", time.Since(t))
	} else {
		log.Info("drained", "duration", time.Since(t))
	}
	cancel()
	close(sweepStop)
	select {
	case <-sweepDone:
	case <-db.Failed():
		// A sweep stuck in a failed store must not hold the exit; Close
		// bounds what is left.
	}
	if failed == nil {
		select {
		case <-srv.Failed():
			failed = errFailedStore(db) // it failed while draining
		default:
		}
	}
	if err := closeStore(); err != nil && failed == nil {
		failed = err
	}
	log.Info("stopped", "uptime", time.Since(start))
	return failed
}

// errFailedStore is serve's exit error once the store has failed.
func errFailedStore(db *store.DB) error {
	if db.Full() {
		return errors.New("the store's disk is full (a write could not be made durable); free space and restart to recover it")
	}
	return errors.New("the store failed (a write could not be made durable); restart to recover it")
}

// sessionCacheBytes maps --session-cache-mb to store.Options (0: off).
func sessionCacheBytes(mb int) int {
	if mb == 0 {
		return -1
	}
	return mb << 20
}

func newLogger(e *env, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, usagef("--log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(e.stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(e.stderr, opts)), nil
	}
	return nil, usagef("--log-format %q: want text or json", format)
}
