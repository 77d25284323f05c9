package webhook

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"

	"github.com/countersign/countersign/store"
)

// Defaults of Config.
const (
	// DefaultMaxAttempts is DESIGN's: a delivery is tried 8 times, then
	// given up.
	DefaultMaxAttempts = 8
	// DefaultBackoffBase is the wait after the first failed attempt; each
	// later one doubles it (with jitter), so the 8 attempts span about an
	// hour: 30 s, 1, 2, 4, 8, 16 and 32 minutes.
	DefaultBackoffBase = 30 * time.Second
	// DefaultTimeout bounds one attempt, connection to last byte: a
	// receiver that hangs costs a worker this long, no more.
	DefaultTimeout = 10 * time.Second
	// DefaultPoll is the longest the worker sleeps between two reads of
	// the outbox: it wakes sooner for a new entry (OutboxWritten) and for
	// the next retry coming due.
	DefaultPoll = time.Second
	// DefaultConcurrency is how many deliveries are in flight at once;
	// one subscription has at most half of them (perHook), so that a
	// receiver that hangs slows only its own deliveries.
	DefaultConcurrency = 8

	maxBackoff  = 6 * time.Hour
	batchSize   = 64
	userAgent   = "countersign-webhooks/1"
	maxRespRead = 64 << 10
)

// Config configures a Sender. Zero values select the defaults.
type Config struct {
	DB     *store.DB
	Sealer *store.Sealer // opens the subscriptions' secrets; required
	// BackoffBase is the wait after the first failed attempt; the n-th
	// failure waits BackoffBase·2^(n-1), times a jitter of ±25 %.
	BackoffBase time.Duration
	MaxAttempts int
	Timeout     time.Duration
	Poll        time.Duration
	Concurrency int
	Metrics     *metrics.Set // the server's; nil makes one of its own
	Logger      *slog.Logger
	Now         func() time.Time
}

// Sender is the delivery worker: it reads the store's outbox, posts each
// due delivery to its subscription, and records the attempt in the same
// synced batch that moves the delivery (RecordAttempt), so a delivery
// leaves the outbox only once its result is logged. Deliveries are at
// least once: a crash after a receiver answered and before the log was
// written repeats the delivery with the same webhook-id, which is how
// receivers recognise it.
type Sender struct {
	cfg    Config
	client *fasthttp.Client
	log    *slog.Logger

	delivered, retried, failed, dropped *metrics.Counter

	// The deliveries in flight. inflight and perHook, the worker's own,
	// say which outbox entries are being delivered and how many per
	// subscription, so that a read of the outbox skips them and at most
	// Concurrency run; a delivery that ends adds itself to ended (guarded
	// by mu), which the worker reaps before its next read, and wakes the
	// worker (freed). wg is every delivery goroutine, waited for at Stop.
	freed    chan struct{}
	inflight map[deliveryKey]struct{}
	perHook  map[hookKey]int
	mu       sync.Mutex
	ended    []deliveryKey
	wg       sync.WaitGroup

	stop chan struct{}
	done chan struct{}
	once sync.Once
}

// hookKey names a subscription across organizations, deliveryKey one
// event's delivery to it.
type (
	hookKey struct {
		org store.OrgID
		id  string
	}
	deliveryKey struct {
		hook  hookKey
		event string
	}
)

// New makes a Sender; Start runs it.
func New(cfg Config) *Sender {
	if cfg.BackoffBase <= 0 {
		cfg.BackoffBase = DefaultBackoffBase
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = DefaultMaxAttempts
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Poll <= 0 {
		cfg.Poll = DefaultPoll
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = DefaultConcurrency
	}
	if cfg.Metrics == nil {
		cfg.Metrics = metrics.NewSet()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	set := cfg.Metrics
	return &Sender{
		cfg: cfg,
		log: cfg.Logger,
		client: &fasthttp.Client{
			Name:                userAgent,
			ReadTimeout:         cfg.Timeout,
			WriteTimeout:        cfg.Timeout,
			MaxResponseBodySize: maxRespRead,
			MaxConnsPerHost:     cfg.Concurrency,
		},
		delivered: set.NewCounter(`countersign_webhook_deliveries_total{outcome="delivered"}`),
		retried:   set.NewCounter(`countersign_webhook_deliveries_total{outcome="retrying"}`),
		failed:    set.NewCounter(`countersign_webhook_deliveries_total{outcome="failed"}`),
		dropped:   set.NewCounter(`countersign_webhook_deliveries_total{outcome="dropped"}`),
		freed:     make(chan struct{}, 1),
		inflight:  make(map[deliveryKey]struct{}),
		perHook:   make(map[hookKey]int),
		stop:      make(chan struct{}),
		done:      make(chan struct{}),
	}
}

// Start runs the worker until Stop. Deliveries written before a restart
// are in the outbox and are resumed from the first read.
func (s *Sender) Start() { go s.run() }

// Stop asks the worker to stop and waits until the deliveries in flight
// are recorded (each bounded by Config.Timeout), or ctx ends.
func (s *Sender) Stop(ctx context.Context) error {
	s.once.Do(func() { close(s.stop) })
	select {
	case <-s.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Sender) run() {
	defer close(s.done)
	defer s.wg.Wait() // the deliveries in flight are recorded before Stop returns
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-timer.C:
		case <-s.cfg.DB.OutboxWritten():
		case <-s.freed:
		}
		for s.sendDue() {
			select {
			case <-s.stop:
				return
			default:
			}
		}
		timer.Reset(s.untilNext())
	}
}

// untilNext is how long the worker may sleep: until the outbox's next
// entry is due (a retry), at most Poll. While deliveries are in flight the
// earliest entry may be one of them, due already: then Poll, since the end
// of each delivery wakes the worker anyway (freed).
func (s *Sender) untilNext() time.Duration {
	due, ok, err := s.cfg.DB.NextDue()
	if err != nil || !ok {
		return s.cfg.Poll
	}
	wait := time.Until(due)
	if wait <= 0 && len(s.inflight) > 0 {
		return s.cfg.Poll
	}
	return min(max(wait, time.Millisecond), s.cfg.Poll)
}

// reap forgets the deliveries that ended since the last read of the
// outbox. Only here, just before a read, and not as each ends: a read that
// began before a delivery ended may hold its entry as it was before the
// attempt was recorded, and must still skip it.
func (s *Sender) reap() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range s.ended {
		delete(s.inflight, k)
		if s.perHook[k.hook]--; s.perHook[k.hook] <= 0 {
			delete(s.perHook, k.hook)
		}
	}
	s.ended = s.ended[:0]
}

// sendDue starts the delivery of due entries that are not in flight, as
// long as fewer than Concurrency are in flight and their subscription has
// fewer than perHook, and reports whether to read the outbox again at once:
// the read was full and started something. Nothing waits for a delivery to end, so
// a receiver that hangs delays neither the others nor the next read.
func (s *Sender) sendDue() bool {
	s.reap()
	n := len(s.inflight)
	if n >= s.cfg.Concurrency {
		return false // freed wakes the worker
	}
	limit := batchSize + n // the entries in flight are read again, and skipped
	due, err := s.cfg.DB.DueDeliveries(s.cfg.Now(), limit)
	if err != nil {
		// A closed or failed store is logged once by the store and the
		// core, not here once a second until the process exits.
		if !errors.Is(err, store.ErrClosed) && !errors.Is(err, store.ErrFatal) {
			s.log.Error("reading the webhook outbox", "err", err)
		}
		return false
	}
	perHook := max(1, s.cfg.Concurrency/2)
	started := 0
	for i := range due {
		e := &due[i]
		hk := hookKey{e.OrgID, e.WebhookID}
		key := deliveryKey{hk, e.EventID}
		if _, busy := s.inflight[key]; busy || s.perHook[hk] >= perHook {
			continue
		}
		if len(s.inflight) >= s.cfg.Concurrency {
			return false // freed wakes the worker
		}
		s.inflight[key] = struct{}{}
		s.perHook[hk]++
		started++
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.deliver(e)
			s.mu.Lock()
			s.ended = append(s.ended, key)
			s.mu.Unlock()
			select {
			case s.freed <- struct{}{}:
			default: // already signalled
			}
		}()
	}
	return len(due) == limit && started > 0
}

// deliver makes one attempt at e and records it.
func (s *Sender) deliver(e *store.OutboxEntry) {
	hook, err := s.cfg.DB.Webhook(e.OrgID, e.WebhookID)
	if errors.Is(err, store.ErrNotFound) {
		// The subscription was deleted: nobody is owed this any more.
		if err := s.cfg.DB.DropDelivery(e); err != nil {
			s.log.Error("dropping a delivery of a deleted webhook", "webhook", e.WebhookID, "err", err)
		}
		s.dropped.Inc()
		return
	}
	if err != nil {
		s.log.Error("reading a webhook", "webhook", e.WebhookID, "err", err)
		return
	}
	attempt := store.DeliveryAttempt{EventID: e.EventID, Event: e.Event, Attempt: e.Attempts + 1, At: s.cfg.Now().UnixMilli()}
	final := false
	start := time.Now()
	status, perr := s.post(&hook, e)
	attempt.Latency = time.Since(start)
	attempt.Status = status
	switch {
	case perr == nil && status >= 200 && status < 300:
		attempt.Outcome = store.OutcomeDelivered
	case errors.Is(perr, ErrURL), errors.Is(perr, ErrSecret), errors.Is(perr, store.ErrSealedOpen):
		// No retry makes these work.
		attempt.Outcome, final = store.OutcomeFailed, true
	case attempt.Attempt >= s.cfg.MaxAttempts:
		attempt.Outcome = store.OutcomeFailed
	default:
		attempt.Outcome = store.OutcomeRetry
	}
	if perr != nil {
		attempt.Error = perr.Error()
	} else if attempt.Outcome != store.OutcomeDelivered {
		attempt.Error = "the receiver answered " + strconv.Itoa(status)
	}
	var next time.Time
	if attempt.Outcome == store.OutcomeRetry {
		next = s.cfg.Now().Add(s.backoff(attempt.Attempt))
	}
	if err := s.cfg.DB.RecordAttempt(e, attempt, next); err != nil {
		// The entry stays where it was and is tried again: at least once.
		s.log.Error("recording a webhook delivery", "webhook", e.WebhookID, "event", e.EventID, "err", err)
		return
	}
	switch attempt.Outcome {
	case store.OutcomeDelivered:
		s.delivered.Inc()
	case store.OutcomeRetry:
		s.retried.Inc()
	default:
		s.failed.Inc()
		s.log.Warn("webhook delivery given up", "webhook", e.WebhookID, "event", e.EventID,
			"attempts", attempt.Attempt, "final", final, "err", attempt.Error)
	}
}

// backoff is the wait after the n-th failed attempt: BackoffBase·2^(n-1),
// capped, times a uniform jitter in [0.75, 1.25), so receivers that failed
// together are not all retried at one instant. Each wait is still longer
// than the one before: 2·0.75 > 1.25.
func (s *Sender) backoff(n int) time.Duration {
	d := s.cfg.BackoffBase << min(n-1, 30)
	if d <= 0 || d > maxBackoff {
		d = maxBackoff
	}
	return time.Duration(float64(d) * (0.75 + rand.Float64()/2))
}

// post sends e to hook, signed, and returns the receiver's status.
func (s *Sender) post(hook *store.Webhook, e *store.OutboxEntry) (int, error) {
	if CheckURL(hook.URL) != nil {
		return 0, ErrURL
	}
	target, err := url.Parse(hook.URL)
	if err != nil {
		return 0, ErrURL
	}
	secret, err := s.cfg.DB.WebhookSecret(e.OrgID, e.WebhookID, s.cfg.Sealer)
	if err != nil {
		return 0, err
	}
	key, err := signingKey(hook.Format, secret)
	if err != nil {
		return 0, err
	}
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer func() { fasthttp.ReleaseRequest(req); fasthttp.ReleaseResponse(resp) }()
	req.Header.SetMethod(fasthttp.MethodPost)
	req.SetRequestURI(hook.URL)
	req.Header.SetUserAgent(userAgent)
	req.SetBodyRaw(e.Body)
	if hook.Format == store.FormatUnloq {
		form, err := url.ParseQuery(string(e.Body))
		if err != nil {
			return 0, err
		}
		req.Header.SetContentType("application/x-www-form-urlencoded")
		req.Header.Set("X-Unloq-Signature", SignUnloq(key, target, form))
	} else {
		ts := s.cfg.Now().Unix()
		req.Header.SetContentType("application/json")
		req.Header.Set("webhook-id", e.EventID)
		req.Header.Set("webhook-timestamp", strconv.FormatInt(ts, 10))
		req.Header.Set("webhook-signature", SignStandard(key, e.EventID, ts, e.Body))
	}
	// Redirects are not followed: the subscription names the receiver.
	if err := s.client.DoTimeout(req, resp, s.cfg.Timeout); err != nil {
		return 0, err
	}
	return resp.StatusCode(), nil
}
