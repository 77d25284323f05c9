package store

import (
	"encoding/binary"
	"errors"
	"strings"
	"sync"
)

// WebhookIDPrefix starts every webhook subscription id the store makes.
const (
	WebhookIDPrefix = "whk_"
	webhookIDBytes  = 10 // 16 base32 characters: unique, not secret

	// MaxWebhooksPerOrg bounds an organization's subscriptions: each
	// approval change writes one outbox entry per matching subscription
	// in its own batch, so the count is what that batch costs.
	MaxWebhooksPerOrg = 16
	// MaxWebhookURLBytes bounds a subscription's URL.
	MaxWebhookURLBytes = 2048
)

// WebhookFormat is how a subscription's deliveries are encoded and signed.
type WebhookFormat uint8

// The formats of DESIGN "Webhooks" and "UNLOQ-compatible surface".
const (
	// FormatStandard: a JSON body signed per Standard Webhooks
	// (webhook-id, webhook-timestamp, webhook-signature).
	FormatStandard WebhookFormat = 1
	// FormatUnloq: a form-encoded body signed with X-Unloq-Signature, as
	// UNLOQ's webhooks are, for integrations moving from it.
	FormatUnloq WebhookFormat = 2
)

// String is the format's name in the admin API.
func (f WebhookFormat) String() string {
	switch f {
	case FormatStandard:
		return "standard"
	case FormatUnloq:
		return "unloq"
	}
	return "unknown"
}

// ParseWebhookFormat reads a format's name; "" is FormatStandard.
func ParseWebhookFormat(s string) (WebhookFormat, error) {
	switch s {
	case "standard", "":
		return FormatStandard, nil
	case "unloq":
		return FormatUnloq, nil
	}
	return 0, ErrWebhookFormat
}

// WebhookEvents is a set of event types, one bit each, so a subscription's
// events are one byte and matching an event to it is one AND.
type WebhookEvents uint8

// The event types of DESIGN "Webhooks".
const (
	EventApprovalCreated WebhookEvents = 1 << iota
	EventApprovalDecided
	EventApprovalEmail
	EventDecisionCreated

	allWebhookEvents = EventApprovalCreated | EventApprovalDecided | EventApprovalEmail | EventDecisionCreated
)

// webhookEventNames are the types' names, in bit order.
var webhookEventNames = [...]string{"approval.created", "approval.decided", "approval.email", "decision.created"}

// ParseWebhookEvent reads one event type's name.
func ParseWebhookEvent(s string) (WebhookEvents, error) {
	for i, n := range webhookEventNames {
		if s == n {
			return 1 << i, nil
		}
	}
	return 0, ErrWebhookEvent
}

// Names lists the set's event types' names, in a fixed order.
func (e WebhookEvents) Names() []string {
	var out []string
	for i, n := range webhookEventNames {
		if e&(1<<i) != 0 {
			out = append(out, n)
		}
	}
	return out
}

// String is the name of a single event type ("" for none or several).
func (e WebhookEvents) String() string {
	for i, n := range webhookEventNames {
		if e == 1<<i {
			return n
		}
	}
	return ""
}

// Errors of the webhook family.
var (
	// ErrWebhookFormat: not "standard" or "unloq".
	ErrWebhookFormat = errors.New("store: webhook format must be standard or unloq")
	// ErrWebhookEvent: not one of the event types.
	ErrWebhookEvent = errors.New("store: unknown webhook event type")
	// ErrWebhookURL: an empty or over-long URL (the server checks its
	// scheme and host).
	ErrWebhookURL = errors.New("store: webhook url is empty or longer than 2048 bytes")
	// ErrWebhookLimit: the organization has MaxWebhooksPerOrg
	// subscriptions already.
	ErrWebhookLimit = errors.New("store: the organization has as many webhook subscriptions as allowed")
)

// Webhook is an organization's subscription: where its events are
// delivered, which ones, and how. Its signing secret is sealed in the
// same record and read back only by WebhookSecret, for signing.
type Webhook struct {
	OrgID     OrgID
	ID        string
	URL       string
	Events    WebhookEvents
	Format    WebhookFormat
	CreatedAt int64 // unix ms
}

// webhookRec is a subscription record; slices alias the value.
type webhookRec struct {
	createdAt int64
	format    WebhookFormat
	events    WebhookEvents
	url       []byte
	sealed    []byte
}

// appendWebhookRec appends the record: 01 created:8 format events lp(url)
// sealed secret...
func appendWebhookRec(dst []byte, r *webhookRec) []byte {
	dst = append(dst, tagV1)
	dst = binary.BigEndian.AppendUint64(dst, uint64(r.createdAt))
	dst = append(dst, byte(r.format), byte(r.events))
	dst = appendLP(dst, r.url)
	return append(dst, r.sealed...)
}

func parseWebhookRec(v []byte, r *webhookRec) error {
	p := parser{b: v}
	if p.byte1() != tagV1 {
		return ErrCorrupt
	}
	r.createdAt = p.i64()
	r.format = WebhookFormat(p.byte1())
	r.events = WebhookEvents(p.byte1())
	r.url = p.lp()
	r.sealed = p.rest()
	if !p.done() || r.format < FormatStandard || r.format > FormatUnloq || r.events&^allWebhookEvents != 0 {
		return ErrCorrupt
	}
	return nil
}

func (r *webhookRec) webhook(org OrgID, id string) Webhook {
	return Webhook{OrgID: org, ID: id, URL: string(r.url), Events: r.events, Format: r.format, CreatedAt: r.createdAt}
}

func appendWebhookKey[T string | []byte](dst []byte, org OrgID, id T) []byte {
	return append(append(append(dst, kindWebhook), org[:]...), id...)
}

// CreateWebhook stores a new subscription of the organization with the
// URL, events and format of w, and secret sealed by s under the record's
// key, so the secret is never on disk in the clear. It returns the
// subscription with its new id and creation time. ErrNotFound if there is
// no such organization; ErrWebhookLimit past MaxWebhooksPerOrg.
func (db *DB) CreateWebhook(org OrgID, w Webhook, secret []byte, s *Sealer) (Webhook, error) {
	var argErr error
	switch {
	case s == nil:
		argErr = ErrNoSealer
	case w.URL == "" || len(w.URL) > MaxWebhookURLBytes:
		argErr = ErrWebhookURL
	case w.Format < FormatStandard || w.Format > FormatUnloq:
		argErr = ErrWebhookFormat
	case w.Events == 0 || w.Events&^allWebhookEvents != 0:
		argErr = ErrWebhookEvent
	case len(secret) == 0 || len(secret) > MaxKeyBytes:
		argErr = ErrTooLarge
	}
	c, err := db.begin(org, argErr)
	if err != nil {
		return Webhook{}, err
	}
	defer c.end()
	c.hold(db.lock(domainOrg, c.org, "webhooks"))
	if err := db.orgExists(c); err != nil {
		return Webhook{}, err
	}
	hooks, err := db.scanWebhooks(c)
	if err != nil {
		return Webhook{}, err
	}
	if len(hooks) >= MaxWebhooksPerOrg {
		return Webhook{}, ErrWebhookLimit
	}
	var raw [webhookIDBytes]byte
	if err := db.random(raw[:]); err != nil {
		return Webhook{}, err
	}
	w.OrgID, w.ID, w.CreatedAt = org, WebhookIDPrefix+cidEncoding.EncodeToString(raw[:]), db.nowMs()
	c.key = appendWebhookKey(c.key[:0], c.org, w.ID)
	r := webhookRec{createdAt: w.CreatedAt, format: w.Format, events: w.Events, url: []byte(w.URL)}
	r.sealed = s.Seal(nil, secret, c.key)
	c.val = appendWebhookRec(c.val[:0], &r)
	b := db.pdb.NewBatch()
	_ = b.Set(c.key, c.val, nil)
	if err := db.commit(b); err != nil {
		return Webhook{}, err
	}
	db.hooks.forget(org)
	return w, nil
}

// Webhook reads the organization's subscription id. ErrNotFound if it has
// none of that id.
func (db *DB) Webhook(org OrgID, id string) (Webhook, error) {
	c, err := db.begin(org, lookupID(id))
	if err != nil {
		return Webhook{}, err
	}
	defer c.end()
	var w Webhook
	c.key = appendWebhookKey(c.key[:0], c.org, id)
	err = db.get(c.key, func(v []byte) error {
		var r webhookRec
		if err := parseWebhookRec(v, &r); err != nil {
			return err
		}
		w = r.webhook(org, id)
		return nil
	})
	return w, err
}

// WebhookSecret opens the subscription's sealed signing secret with s,
// for signing a delivery. ErrNotFound if the organization has no such
// subscription; ErrSealedOpen if s holds another master key.
func (db *DB) WebhookSecret(org OrgID, id string, s *Sealer) ([]byte, error) {
	argErr := lookupID(id)
	if s == nil {
		argErr = ErrNoSealer
	}
	c, err := db.begin(org, argErr)
	if err != nil {
		return nil, err
	}
	defer c.end()
	var secret []byte
	c.key = appendWebhookKey(c.key[:0], c.org, id)
	err = db.get(c.key, func(v []byte) error {
		var r webhookRec
		if err := parseWebhookRec(v, &r); err != nil {
			return err
		}
		var oerr error
		secret, oerr = s.Open(nil, r.sealed, c.key)
		return oerr
	})
	return secret, err
}

// Webhooks returns a page of the organization's subscriptions by id, and
// the cursor of the next page ("" after the last).
func (db *DB) Webhooks(org OrgID, limit int, cursor string) ([]Webhook, string, error) {
	after, argErr := parseCursor(cursor)
	c, err := db.begin(org, argErr)
	if err != nil {
		return nil, "", err
	}
	defer c.end()
	var out []Webhook
	c.key = appendWebhookKey(c.key[:0], c.org, "")
	next, err := db.scanPage(c.key, after, limit, false, func(id, v []byte) error {
		var r webhookRec
		if err := parseWebhookRec(v, &r); err != nil {
			return err
		}
		out = append(out, r.webhook(org, string(id)))
		return nil
	})
	return out, next, err
}

// DeleteWebhook removes the subscription and its delivery log. Its
// deliveries still in the outbox are dropped when they come due (the
// worker finds no subscription: DropDelivery). ErrNotFound if the
// organization has no such subscription.
func (db *DB) DeleteWebhook(org OrgID, id string) error {
	c, err := db.begin(org, lookupID(id))
	if err != nil {
		return err
	}
	defer c.end()
	c.hold(db.lock(domainOrg, c.org, "webhooks"))
	c.key = appendWebhookKey(c.key[:0], c.org, id)
	if ok, err := db.has(c.key); err != nil || !ok {
		if err == nil {
			err = ErrNotFound
		}
		return err
	}
	b := db.pdb.NewBatch()
	_ = b.Delete(c.key, nil)
	c.key2 = appendDeliveryPrefix(c.key2[:0], c.org, id)
	_ = b.DeleteRange(c.key2, prefixEnd(nil, c.key2), nil)
	if err := db.commit(b); err != nil {
		return err
	}
	db.hooks.forget(org)
	return nil
}

// scanWebhooks lists the organization's subscriptions, at most
// MaxPageLimit (there are at most MaxWebhooksPerOrg).
func (db *DB) scanWebhooks(c *call) ([]Webhook, error) {
	var out []Webhook
	prefix := appendWebhookKey(nil, c.org, "")
	_, err := db.scanPage(prefix, nil, MaxPageLimit, false, func(id, v []byte) error {
		var r webhookRec
		if err := parseWebhookRec(v, &r); err != nil {
			return err
		}
		out = append(out, r.webhook(c.org, string(id)))
		return nil
	})
	return out, err
}

// webhookCache holds each organization's subscriptions as last read, so
// that an approval's change, which must look up the subscriptions its
// event goes to, reads no records when the organization has none (the
// usual case) or they have not changed. Only this process writes the
// store (Pebble locks the directory), so forgetting an organization's
// entry after each change of its subscriptions keeps the cache current.
type webhookCache struct {
	mu  sync.RWMutex
	org map[OrgID][]Webhook
}

func (wc *webhookCache) forget(org OrgID) {
	wc.mu.Lock()
	delete(wc.org, org)
	wc.mu.Unlock()
}

// webhooksOf returns the organization's subscriptions, reading them on a miss.
// The slice is shared: callers do not change it.
func (db *DB) webhooksOf(c *call) ([]Webhook, error) {
	wc := &db.hooks
	wc.mu.RLock()
	hooks, ok := wc.org[c.org]
	wc.mu.RUnlock()
	if ok {
		return hooks, nil
	}
	hooks, err := db.scanWebhooks(c)
	if err != nil {
		return nil, err
	}
	wc.mu.Lock()
	if wc.org == nil {
		wc.org = map[OrgID][]Webhook{}
	}
	wc.org[c.org] = hooks
	wc.mu.Unlock()
	return hooks, nil
}

// ValidWebhookID reports whether s has the form of the store's
// subscription ids (whk_ and 16 base32 characters), so a caller can
// answer anything else as missing without reading.
func ValidWebhookID(s string) bool {
	return strings.HasPrefix(s, WebhookIDPrefix) && len(s) == len(WebhookIDPrefix)+16
}
