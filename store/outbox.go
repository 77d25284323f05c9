package store

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/countersign/countersign/engine/approval"
)

// The webhook outbox (DESIGN "Webhooks"): each change of an approval that
// a subscription listens for writes, in the change's own batch, one entry
// per matching subscription, keyed by the time it is due. So no change is
// acknowledged without its events and no event exists without its change,
// and a delivery worker that restarts finds every delivery still owed.
//
//	outbox    kind be64(due ns) org lp(eventID) webhookID   01 created:8 attempts event body...
//	delivery  kind org lp(webhookID) be64(seq)              01 at:8 attempt outcome status:2 latency:8 event lp(eventID) error...
const (
	// EventIDPrefix starts every event id (Standard Webhooks' webhook-id):
	// one id per event, the same in each of its deliveries and retries, so
	// a receiver can tell a retry from a new event.
	EventIDPrefix = "msg_"
	eventIDBytes  = 15

	// DeliveryLogLimit is how many attempts a subscription's delivery log
	// keeps: the newest, so the log of a failing receiver stays bounded.
	DeliveryLogLimit = 100
	// MaxDeliveryErrorBytes bounds the error text an attempt logs.
	MaxDeliveryErrorBytes = 256
)

// ApprovalEvent is what the body of an approval's event is made from.
type ApprovalEvent struct {
	Type     WebhookEvents // EventApprovalCreated, EventApprovalDecided or EventApprovalEmail
	ID       string        // the event's id, EventIDPrefix and base32
	At       time.Time     // when the change was made
	Approval *approval.Approval
	// Devices are the user's active devices, with the push tokens an
	// organization's push service wakes them by: approval.created only.
	Devices []Device
	// Email is the one-time link of an EMAIL approval and the address it
	// is for: approval.email only.
	Email EmailLink
}

// EmailLink is what an organization's notifier needs to e-mail the user
// the one-time link of an EMAIL approval: the address and the link's URL.
// The URL holds the link's secret, which the store keeps nowhere else but
// in the outbox entry until it is delivered; the approval keeps its hash.
type EmailLink struct {
	To, URL string
}

// EventBodies appends to dst the body of ev as a subscription of format f
// receives it. The server gives the store one (SetEventBodies); the store
// cannot make bodies itself, since JSON and form encoding belong to the
// server.
type EventBodies func(dst []byte, f WebhookFormat, ev *ApprovalEvent) []byte

// SetEventBodies sets how event bodies are made. Until it is called no
// outbox entries are written: call it before serving.
func (db *DB) SetEventBodies(fn EventBodies) { db.bodies.Store(&fn) }

// OutboxWritten is signalled after a commit that added outbox entries, so
// a delivery worker wakes at once instead of on its next poll. One signal
// may stand for several commits.
func (db *DB) OutboxWritten() <-chan struct{} { return db.outboxSignal }

// addApprovalEvent adds to b the outbox entries of the event typ of a, one
// for each of the organization's subscriptions that listens for it, due
// now. With no such subscription it reads nothing and allocates nothing.
func (db *DB) addApprovalEvent(b *pebble.Batch, c *call, typ WebhookEvents, a *approval.Approval) error {
	return db.addEvent(b, c, typ, a, nil)
}

// addEvent is addApprovalEvent with the link of an approval.email event.
func (db *DB) addEvent(b *pebble.Batch, c *call, typ WebhookEvents, a *approval.Approval, link *EmailLink) error {
	bodies := db.bodies.Load()
	if bodies == nil {
		return nil
	}
	hooks, err := db.webhooksOf(c)
	if err != nil {
		return err
	}
	matching := 0
	for i := range hooks {
		if hooks[i].Events&typ != 0 {
			matching++
		}
	}
	if matching == 0 {
		return nil
	}
	var raw [eventIDBytes]byte
	if err := db.random(raw[:]); err != nil {
		return err
	}
	now := db.now()
	ev := ApprovalEvent{Type: typ, ID: EventIDPrefix + cidEncoding.EncodeToString(raw[:]), At: now, Approval: a}
	if link != nil {
		ev.Email = *link
	}
	if typ == EventApprovalCreated {
		devices, err := db.DevicesOfUser(c.org, a.UserID)
		if err != nil {
			return err
		}
		for _, d := range devices {
			if d.RevokedAt == 0 {
				ev.Devices = append(ev.Devices, d)
			}
		}
	}
	var body [FormatUnloq + 1][]byte // made once per format
	for i := range hooks {
		h := &hooks[i]
		if h.Events&typ == 0 {
			continue
		}
		if body[h.Format] == nil {
			body[h.Format] = (*bodies)(nil, h.Format, &ev)
		}
		e := OutboxEntry{OrgID: c.org, WebhookID: h.ID, EventID: ev.ID, Event: typ, CreatedAt: now.UnixMilli(),
			Due: now, Body: body[h.Format]}
		_ = b.Set(e.appendKey(nil), e.appendValue(nil, db.sealer), nil)
	}
	c.events += matching
	return nil
}

// commitEvents is commit, then OutboxWritten's signal if the call added
// outbox entries.
func (db *DB) commitEvents(b *pebble.Batch, c *call) error {
	if err := db.commit(b); err != nil {
		return err
	}
	if c.events > 0 {
		select {
		case db.outboxSignal <- struct{}{}:
		default:
		}
	}
	return nil
}

// OutboxEntry is one delivery owed: an event for one subscription, due at
// Due, after Attempts failed attempts.
type OutboxEntry struct {
	OrgID     OrgID
	WebhookID string
	EventID   string
	Event     WebhookEvents
	CreatedAt int64 // unix ms: when the event was written
	Attempts  int
	Due       time.Time
	Body      []byte
}

func (e *OutboxEntry) appendKey(dst []byte) []byte {
	dst = append(dst, kindOutbox)
	dst = binary.BigEndian.AppendUint64(dst, uint64(max(e.Due.UnixNano(), 0)))
	dst = append(dst, e.OrgID[:]...)
	dst = appendLP(dst, e.EventID)
	return append(dst, e.WebhookID...)
}

// tagSealedBody marks an outbox record whose body is sealed (Sealer): an
// event's body can carry a secret until it is delivered (approval.email's
// one-time link), and nothing secret is stored in the clear.
const tagSealedBody byte = 0x03

// appendValue appends e's record: with a Sealer, the body sealed under the
// entry's organization, event and subscription (not its due time, which
// a retry moves), so a body cannot be opened as another entry's.
func (e *OutboxEntry) appendValue(dst []byte, s *Sealer) []byte {
	tag := tagV1
	if s != nil {
		tag = tagSealedBody
	}
	dst = append(dst, tag)
	dst = binary.BigEndian.AppendUint64(dst, uint64(e.CreatedAt))
	dst = append(dst, byte(min(e.Attempts, 255)), byte(e.Event))
	if s == nil {
		return append(dst, e.Body...)
	}
	return s.Seal(dst, e.Body, e.bodyAAD())
}

// bodyAAD is what a sealed body is bound to.
func (e *OutboxEntry) bodyAAD() []byte {
	aad := append([]byte{kindOutbox}, e.OrgID[:]...)
	aad = appendLP(aad, e.EventID)
	return append(aad, e.WebhookID...)
}

// parseOutboxEntry decodes an outbox record, copying what it keeps and
// opening a sealed body with s (ErrNoSealer without one).
func parseOutboxEntry(k, v []byte, e *OutboxEntry, s *Sealer) error {
	kp := parser{b: k}
	kp.byte1()
	due := kp.i64()
	copy(e.OrgID[:], kp.take(8))
	e.EventID = string(kp.lp())
	e.WebhookID = string(kp.rest())
	p := parser{b: v}
	tag := p.byte1()
	e.CreatedAt = p.i64()
	e.Attempts = int(p.byte1())
	e.Event = WebhookEvents(p.byte1())
	body := p.rest()
	if !kp.done() || !p.done() || (tag != tagV1 && tag != tagSealedBody) || e.Event.String() == "" {
		return ErrCorrupt
	}
	switch {
	case tag == tagV1:
		e.Body = bytes.Clone(body)
	case s == nil:
		return ErrNoSealer
	default:
		var err error
		if e.Body, err = s.Open(nil, body, e.bodyAAD()); err != nil {
			return fmt.Errorf("%w: an outbox body does not open: %v", ErrCorrupt, err)
		}
	}
	e.Due = time.Unix(0, due)
	return nil
}

// DueDeliveries returns up to limit outbox entries due at now, the
// longest due first.
func (db *DB) DueDeliveries(now time.Time, limit int) ([]OutboxEntry, error) {
	c, err := db.admit(nil)
	if err != nil {
		return nil, err
	}
	defer c.end()
	upper := binary.BigEndian.AppendUint64([]byte{kindOutbox}, uint64(max(now.UnixNano(), 0))+1)
	it, err := db.pdb.NewIter(&pebble.IterOptions{LowerBound: []byte{kindOutbox}, UpperBound: upper})
	if err != nil {
		return nil, err
	}
	var out []OutboxEntry
	for valid := it.First(); valid && len(out) < limit; valid = it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			_ = it.Close()
			return nil, err
		}
		var e OutboxEntry
		if err := parseOutboxEntry(it.Key(), v, &e, db.sealer); err != nil {
			_ = it.Close()
			return nil, err
		}
		out = append(out, e)
	}
	return out, it.Close()
}

// NextDue is when the outbox's earliest entry is due; ok false when the
// outbox is empty. The delivery worker sleeps until then.
func (db *DB) NextDue() (due time.Time, ok bool, err error) {
	c, err := db.admit(nil)
	if err != nil {
		return time.Time{}, false, err
	}
	defer c.end()
	it, err := db.pdb.NewIter(&pebble.IterOptions{LowerBound: []byte{kindOutbox}, UpperBound: []byte{kindOutbox + 1}})
	if err != nil {
		return time.Time{}, false, err
	}
	if it.First() {
		if k := it.Key(); len(k) >= 9 {
			due, ok = time.Unix(0, int64(binary.BigEndian.Uint64(k[1:9]))), true
		}
	}
	return due, ok, it.Close()
}

// Outcome is how one delivery attempt ended.
type Outcome uint8

const (
	// OutcomeDelivered: the receiver answered 2xx.
	OutcomeDelivered Outcome = 1
	// OutcomeRetry: the attempt failed and another is scheduled.
	OutcomeRetry Outcome = 2
	// OutcomeFailed: the attempt failed and it was the last; the
	// delivery is given up.
	OutcomeFailed Outcome = 3
)

// String is the outcome's name in the delivery log.
func (o Outcome) String() string {
	switch o {
	case OutcomeDelivered:
		return "delivered"
	case OutcomeRetry:
		return "retrying"
	case OutcomeFailed:
		return "failed"
	}
	return "unknown"
}

// DeliveryAttempt is one entry of a subscription's delivery log.
type DeliveryAttempt struct {
	EventID string
	Event   WebhookEvents
	Attempt int   // 1 for the first
	At      int64 // unix ms, when the attempt started
	Outcome Outcome
	Status  int           // the receiver's status code; 0 when none came
	Error   string        // why it failed, when no status says it
	Latency time.Duration // from sending to the answer (or the error)
}

func appendDeliveryPrefix[T string | []byte](dst []byte, org OrgID, webhookID T) []byte {
	return appendLP(append(append(dst, kindDelivery), org[:]...), webhookID)
}

func appendDeliveryRec(dst []byte, d *DeliveryAttempt) []byte {
	dst = append(dst, tagV1)
	dst = binary.BigEndian.AppendUint64(dst, uint64(d.At))
	dst = append(dst, byte(min(d.Attempt, 255)), byte(d.Outcome))
	dst = binary.BigEndian.AppendUint16(dst, uint16(min(max(d.Status, 0), 999)))
	dst = binary.BigEndian.AppendUint64(dst, uint64(max(d.Latency.Microseconds(), 0)))
	dst = append(dst, byte(d.Event))
	dst = appendLP(dst, d.EventID)
	msg := d.Error
	if len(msg) > MaxDeliveryErrorBytes {
		msg = msg[:MaxDeliveryErrorBytes]
	}
	return append(dst, msg...)
}

func parseDeliveryRec(v []byte, d *DeliveryAttempt) error {
	p := parser{b: v}
	tag := p.byte1()
	d.At = p.i64()
	d.Attempt = int(p.byte1())
	d.Outcome = Outcome(p.byte1())
	if s := p.take(2); s != nil {
		d.Status = int(binary.BigEndian.Uint16(s))
	}
	d.Latency = time.Duration(p.i64()) * time.Microsecond
	d.Event = WebhookEvents(p.byte1())
	d.EventID = string(p.lp())
	d.Error = string(p.rest())
	if !p.done() || tag != tagV1 {
		return ErrCorrupt
	}
	return nil
}

// RecordAttempt logs the attempt d at the entry e (which DueDeliveries
// returned) and, in the same synced batch, takes e out of the outbox:
// rescheduled at next with one more attempt, or, when next is zero
// (delivered, or given up), removed. So a delivery leaves the outbox only
// once its result is logged, and a crash between the two cannot happen.
// The log keeps the subscription's newest DeliveryLogLimit attempts. A
// subscription deleted meanwhile gets no log; e is still taken out.
func (db *DB) RecordAttempt(e *OutboxEntry, d DeliveryAttempt, next time.Time) error {
	c, err := db.begin(e.OrgID, lookupID(e.WebhookID))
	if err != nil {
		return err
	}
	defer c.end()
	c.hold(db.lock(domainOrg, c.org, "webhooks"))
	b := db.pdb.NewBatch()
	_ = b.Delete(e.appendKey(nil), nil)
	if !next.IsZero() {
		moved := *e
		moved.Attempts++
		moved.Due = next
		_ = b.Set(moved.appendKey(nil), moved.appendValue(nil, db.sealer), nil)
	}
	c.key = appendWebhookKey(c.key[:0], c.org, e.WebhookID)
	if ok, err := db.has(c.key); err != nil {
		_ = b.Close()
		return err
	} else if ok {
		prefix := appendDeliveryPrefix(nil, c.org, e.WebhookID)
		if err := db.trimDeliveries(b, prefix, DeliveryLogLimit-1); err != nil {
			_ = b.Close()
			return err
		}
		c.key = binary.BigEndian.AppendUint64(append(c.key[:0], prefix...), db.nextDeliverySeq())
		c.val = appendDeliveryRec(c.val[:0], &d)
		_ = b.Set(c.key, c.val, nil)
	}
	return db.commit(b)
}

// DropDelivery removes e from the outbox unlogged: its subscription is
// gone.
func (db *DB) DropDelivery(e *OutboxEntry) error {
	c, err := db.admit(nil)
	if err != nil {
		return err
	}
	defer c.end()
	b := db.pdb.NewBatch()
	_ = b.Delete(e.appendKey(nil), nil)
	return db.commit(b)
}

// trimDeliveries adds to b the removal of all but the newest keep records
// under prefix.
func (db *DB) trimDeliveries(b *pebble.Batch, prefix []byte, keep int) error {
	it, err := db.pdb.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(nil, prefix)})
	if err != nil {
		return err
	}
	n := 0
	for valid := it.Last(); valid; valid = it.Prev() {
		if n++; n > keep {
			// Everything from here down is older: one range covers it.
			_ = b.DeleteRange(prefix, append(bytes.Clone(it.Key()), 0), nil)
			break
		}
	}
	return it.Close()
}

// nextDeliverySeq is the next delivery log key's sequence: the clock in
// nanoseconds, kept rising, so the log reads in order of the attempts.
func (db *DB) nextDeliverySeq() uint64 {
	now := uint64(max(db.now().UnixNano(), 0))
	for {
		last := db.deliverySeq.Load()
		next := max(now, last+1)
		if db.deliverySeq.CompareAndSwap(last, next) {
			return next
		}
	}
}

// Deliveries returns a page of the subscription's delivery log, newest
// first, and the cursor of the next page ("" after the last). ErrNotFound
// if the organization has no such subscription.
func (db *DB) Deliveries(org OrgID, webhookID string, limit int, cursor string) ([]DeliveryAttempt, string, error) {
	after, argErr := parseCursor(cursor)
	if err := lookupID(webhookID); err != nil {
		argErr = err
	}
	c, err := db.begin(org, argErr)
	if err != nil {
		return nil, "", err
	}
	defer c.end()
	c.key = appendWebhookKey(c.key[:0], c.org, webhookID)
	if ok, err := db.has(c.key); err != nil || !ok {
		if err == nil {
			err = ErrNotFound
		}
		return nil, "", err
	}
	var out []DeliveryAttempt
	c.key = appendDeliveryPrefix(c.key[:0], c.org, webhookID)
	next, err := db.scanPage(c.key, after, limit, true, func(_, v []byte) error {
		var d DeliveryAttempt
		if err := parseDeliveryRec(v, &d); err != nil {
			return err
		}
		out = append(out, d)
		return nil
	})
	return out, next, err
}

// outboxState is the DB's part of the outbox: the body maker, the wake
// signal and the delivery log's sequence.
type outboxState struct {
	bodies       atomic.Pointer[EventBodies]
	outboxSignal chan struct{}
	deliverySeq  atomic.Uint64
	hooks        webhookCache
}
