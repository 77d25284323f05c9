package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"unsafe"

	"github.com/cockroachdb/pebble/v2"
)

// Decision is one validate decision as it was answered. It is stored before
// the response is sent (fail closed) and read back by id.
type Decision struct {
	ID, OrgID, CSID, UserID string
	CreatedAt               int64 // unix ms
	Verified                bool  // verifiedAction
	Score                   int32 // ivScore
	// Response is the answer as the server keeps it, opaque to the store:
	// a compact record the server renders the JSON answer from
	// (server/decisionrec.go), or, in logs written before records existed,
	// the JSON answer itself.
	Response []byte

	// Template, when not nil, is a face template the decision enrolled for
	// TemplateUser: PutDecision stores it (replacing the user's) in the
	// decision's batch, so a user is enrolled exactly when the decision
	// that enrolled them is stored. Never filled by a read.
	Template     []byte
	TemplateUser string

	// idBuf holds the id AssignDecisionID gives d; ID then refers into it.
	idBuf [DecisionIDLen]byte
}

// DecisionIDLen is the length of NewDecisionID's ids.
const DecisionIDLen = 26

// crockford is Crockford's base32 alphabet: no I, L, O or U, so an id read
// aloud or retyped is unambiguous, and it is in ASCII order, so ids sort as
// their bits do.
const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// NewDecisionID returns a 26-character id that sorts by creation time: 48
// bits of unix milliseconds then 80 bits, in Crockford base32 (the ULID
// layout). The 80 bits are random for a store's first id of a millisecond;
// each later id of the same millisecond (or of an earlier one, if the clock
// steps back by up to a second) is the previous id plus one, ULID's
// monotonic mode, so a store's ids rise strictly in the order they were
// made. A larger step back restarts at the clock's time. It panics if
// Options.Rand fails, as crypto/rand would crash the program.
//
// Why strictly: the decision log is the store's main write on the validate
// path, and ids in order make each flushed table of it follow the last
// instead of overlapping it, which spares Pebble compactions (PERF.md,
// "Decision ids in order").
func (db *DB) NewDecisionID() string {
	var out [DecisionIDLen]byte
	return string(db.AppendDecisionID(out[:0]))
}

// AppendDecisionID appends a new decision id (NewDecisionID's format) to
// dst and returns it. It allocates nothing when dst has room.
func (db *DB) AppendDecisionID(dst []byte) []byte {
	// The random bytes are read into a pooled buffer: a local array handed
	// to an io.Reader would escape to the heap on every call.
	s := acquireScratch()
	defer releaseScratch(s)
	s.val = append(s.val[:0], make([]byte, 16)...)
	b := (*[16]byte)(s.val)
	ms := uint64(db.nowMs())
	if err := db.lastID.next(ms, b, db.random); err != nil {
		panic(err)
	}
	return appendDecisionID(dst, b)
}

// idClock makes a store's decision ids rise strictly (NewDecisionID).
type idClock struct {
	mu     sync.Mutex
	ms     uint64 // the last id's milliseconds
	hi     uint16 // and its 80 low bits
	lo     uint64
	issued bool
}

// maxIDClockBack is how far, in milliseconds, the clock may step back while
// ids go on rising from the last one. A larger step restarts at the clock's
// time: one reading far ahead must not date every later id (an idempotency
// key's expiry is read from its decision's id).
const maxIDClockBack = 1000

// next writes into b the id after the last for the time ms: fresh random
// bits in a later millisecond (or after a step back of more than
// maxIDClockBack), else the last id plus one (past the last 80-bit value,
// the next millisecond with fresh bits). On an error nothing changes.
func (c *idClock) next(ms uint64, b *[16]byte, random func([]byte) error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	hi, lo := c.hi, c.lo
	fresh := !c.issued || ms > c.ms || c.ms-ms > maxIDClockBack
	if !fresh {
		ms = c.ms
		if lo++; lo == 0 {
			if hi++; hi == 0 {
				ms, fresh = ms+1, true
			}
		}
	}
	if fresh {
		if err := random(b[6:]); err != nil {
			return err
		}
		hi, lo = binary.BigEndian.Uint16(b[6:8]), binary.BigEndian.Uint64(b[8:])
	}
	c.ms, c.hi, c.lo, c.issued = ms, hi, lo, true
	b[0], b[1], b[2], b[3], b[4], b[5] = byte(ms>>40), byte(ms>>32), byte(ms>>24), byte(ms>>16), byte(ms>>8), byte(ms)
	binary.BigEndian.PutUint16(b[6:8], hi)
	binary.BigEndian.PutUint64(b[8:], lo)
	return nil
}

// AssignDecisionID gives d a new id (NewDecisionID's format) without
// allocating a string for it: the id's bytes are kept inside d, and d.ID is
// a view of them. So d.ID is valid only as long as d is neither overwritten
// nor given another id; copying d copies the bytes but not the view. A
// caller that keeps the id longer copies it (strings.Clone). The validate
// path uses it on the Decision its pooled context reuses.
func (db *DB) AssignDecisionID(d *Decision) {
	db.AppendDecisionID(d.idBuf[:0])
	d.ID = unsafe.String(&d.idBuf[0], len(d.idBuf))
}

// appendDecisionID encodes 128 bits as 26 base32 digits, most significant
// first (the first digit carries only 3 bits).
func appendDecisionID(dst []byte, b *[16]byte) []byte {
	hi, lo := binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])
	for i := 0; i < DecisionIDLen; i++ {
		shift := uint(5 * (DecisionIDLen - 1 - i))
		var v uint64
		switch {
		case shift >= 64:
			v = hi >> (shift - 64)
		case shift == 0:
			v = lo
		default:
			v = lo>>shift | hi<<(64-shift)
		}
		dst = append(dst, crockford[v&31])
	}
	return dst
}

// PutDecision stores d and, when idemKey is not empty, the idempotency
// record (d.OrgID, idemKey) -> (requestHash, d.ID), in one synced batch. If
// the idempotency key is already taken it stores nothing and answers
// ErrExists: a concurrent request with the same key won, and the caller
// should answer with Idempotent's decision instead. When d.Template is not
// nil the batch also stores it as d.TemplateUser's template, so that
// nothing is enrolled by a decision that was not stored.
func (db *DB) PutDecision(d *Decision, idemKey []byte, requestHash [32]byte) error {
	org, ok := parseOrgID(d.OrgID)
	if !ok {
		return ErrNotFound
	}
	switch {
	case d.ID == "", d.Template != nil && d.TemplateUser == "":
		return ErrEmptyID
	case len(d.ID) > MaxKeyBytes || len(idemKey) > MaxKeyBytes || len(d.CSID) > MaxKeyBytes ||
		len(d.UserID) > MaxKeyBytes || len(d.TemplateUser) > MaxKeyBytes:
		return ErrKeyTooLong
	case len(d.Response) > MaxValueBytes, len(d.Template) > MaxValueBytes:
		return ErrTooLarge
	}
	if err := db.enter(); err != nil {
		return err
	}
	defer db.exit()
	s := acquireScratch()
	defer releaseScratch(s)

	b := db.pdb.NewBatch()
	if len(idemKey) > 0 {
		// The stripe makes check-then-write atomic for one key, so of two
		// concurrent requests with the same key exactly one is stored.
		st := db.lockBytes(domainIdem, org, idemKey)
		defer st.Unlock()
		s.key = appendIdempotencyKey(s.key[:0], org, idemKey)
		if taken, err := db.idemTaken(s.key); err != nil || taken {
			_ = b.Close()
			if err == nil {
				err = ErrExists
			}
			return err
		}
		s.val = appendIdempotencyRec(s.val[:0], &requestHash, d.ID)
		_ = b.Set(s.key, s.val, nil)
		if at, ok := idemExpiryOf(db, d.ID); ok {
			s.key2 = appendIdemExpiryKey(s.key2[:0], at, org, idemKey)
			_ = b.Set(s.key2, nil, nil)
		}
	}
	s.key = appendDecisionKey(s.key[:0], org, d.ID)
	s.val = appendDecisionFields(s.val[:0], d.CreatedAt, d.Verified, d.Score, d.CSID, d.UserID, d.Response)
	_ = b.Set(s.key, s.val, nil)
	if d.Template != nil {
		s.key = appendTemplateKey(s.key[:0], org, d.TemplateUser)
		_ = b.Set(s.key, d.Template, nil)
	}
	err := db.commit(b)
	if err == nil && d.Template != nil {
		db.dropTemplate(s.key)
	}
	return err
}

// Decision returns the organization's decision id. ErrNotFound if there is
// none, including when another organization has one with that id.
func (db *DB) Decision(orgIDs, id string) (Decision, error) {
	org, ok := parseOrgID(orgIDs)
	if !ok || id == "" || len(id) > MaxKeyBytes {
		return Decision{}, ErrNotFound
	}
	if err := db.enter(); err != nil {
		return Decision{}, err
	}
	defer db.exit()
	s := acquireScratch()
	defer releaseScratch(s)
	return db.decision(nil, s, org, orgIDs, id)
}

// decision reads through rd, or (nil) an iterator of its own.
func (db *DB) decision(rd *Reader, s *scratch, org orgID, orgIDs, id string) (Decision, error) {
	var d Decision
	s.key = appendDecisionKey(s.key[:0], org, id)
	err := db.getVia(rd, s.key, func(v []byte) error {
		var r decisionRec
		if err := parseDecisionRec(v, &r); err != nil {
			return err
		}
		d = Decision{
			ID:        id,
			OrgID:     orgIDs,
			CSID:      string(r.csid),
			UserID:    string(r.userID),
			CreatedAt: r.createdAt,
			Verified:  r.verified,
			Score:     r.score,
			Response:  bytes.Clone(r.response),
		}
		return nil
	})
	return d, err
}

// Idempotent returns the decision stored under the organization's
// idempotency key, and the hash of the request it was made for (a replay
// with a different request is the caller's 422). ErrNotFound when the key
// was never used, or not within the idempotency TTL (Options): an expired
// key is free for a new decision, the old decision stays readable by id.
func (db *DB) Idempotent(orgIDs string, key []byte) (Decision, [32]byte, error) {
	return db.idempotent(nil, orgIDs, key)
}

// idempotent reads through rd, or (nil) an iterator per read.
func (db *DB) idempotent(rd *Reader, orgIDs string, key []byte) (Decision, [32]byte, error) {
	org, ok := parseOrgID(orgIDs)
	if !ok || len(key) == 0 || len(key) > MaxKeyBytes {
		return Decision{}, [32]byte{}, ErrNotFound
	}
	if err := db.enter(); err != nil {
		return Decision{}, [32]byte{}, err
	}
	defer db.exit()
	s := acquireScratch()
	defer releaseScratch(s)
	var hash [32]byte
	var id string
	s.key = appendIdempotencyKey(s.key[:0], org, key)
	expired := false
	err := db.getVia(rd, s.key, func(v []byte) error {
		h, did, err := parseIdempotencyRec(v)
		hash, id = h, string(did)
		at, ok := idemExpiryOf(db, did)
		expired = ok && at <= db.nowMs()
		return err
	})
	if err != nil {
		return Decision{}, [32]byte{}, err
	}
	if expired {
		return Decision{}, [32]byte{}, ErrNotFound
	}
	d, err := db.decision(rd, s, org, orgIDs, id)
	if errors.Is(err, ErrNotFound) {
		// Both records are written in one batch, so this is damage.
		err = ErrCorrupt
	}
	if err != nil {
		return Decision{}, [32]byte{}, err
	}
	return d, hash, nil
}

// Template returns the user's enrolled face template (opaque to the store).
// ErrNotFound if the user has none.
func (db *DB) Template(orgIDs, userID string) ([]byte, error) {
	t, err := db.TemplateInto(orgIDs, userID, nil)
	if err == nil && t == nil {
		t = []byte{}
	}
	return t, err
}

// TemplateInto appends the user's template to dst and returns it: Template
// into a caller's reused buffer, so that reading a template allocates
// nothing once the buffer has grown. ErrNotFound (and dst unchanged) if the
// user has none.
func (db *DB) TemplateInto(orgIDs, userID string, dst []byte) ([]byte, error) {
	return db.templateInto(nil, orgIDs, userID, dst)
}

// templateInto reads through rd, or (nil) an iterator of its own. Through
// rd it reads the cache first (templates are kept there beside sessions,
// whole, absences included; every template write drops its entry).
func (db *DB) templateInto(rd *Reader, orgIDs, userID string, dst []byte) ([]byte, error) {
	org, ok := parseOrgID(orgIDs)
	if !ok || userID == "" || len(userID) > MaxKeyBytes {
		return dst, ErrNotFound
	}
	if err := db.enter(); err != nil {
		return dst, err
	}
	defer db.exit()
	s := acquireScratch()
	defer releaseScratch(s)
	s.key = appendTemplateKey(s.key[:0], org, userID)
	useCache := rd != nil && db.sc != nil
	if useCache {
		if e := db.sc.get(s.key); e != nil {
			if e.absent {
				return dst, ErrNotFound
			}
			return append(dst, e.rec...), nil
		}
	}
	v, closer, err := db.readVia(rd, s.key)
	if useCache && (err == nil || errors.Is(err, ErrNotFound)) {
		// rd.gen was noted when its view was opened, by this read or an
		// earlier one.
		db.sc.fill(s.key, rd.gen, newCachedTemplate(v, err != nil))
	}
	if err != nil {
		return dst, err
	}
	dst = append(dst, v...)
	return dst, closer.Close()
}

// dropTemplate removes a user's template from the cache after a write of it.
func (db *DB) dropTemplate(key []byte) {
	if db.sc != nil {
		db.sc.write(key, func(*cachedSession) *cachedSession { return nil })
	}
}

// PutTemplate stores (replacing) the user's template, synced.
func (db *DB) PutTemplate(orgIDs, userID string, tmpl []byte) error {
	org, ok := parseOrgID(orgIDs)
	switch {
	case !ok:
		return ErrNotFound
	case userID == "":
		return ErrEmptyID
	case len(userID) > MaxKeyBytes:
		return ErrKeyTooLong
	case len(tmpl) > MaxValueBytes:
		return ErrTooLarge
	}
	if err := db.enter(); err != nil {
		return err
	}
	defer db.exit()
	s := acquireScratch()
	defer releaseScratch(s)
	b := db.pdb.NewBatch()
	s.key = appendTemplateKey(s.key[:0], org, userID)
	_ = b.Set(s.key, tmpl, nil)
	err := db.commit(b)
	if err == nil {
		db.dropTemplate(s.key)
	}
	return err
}

// DeleteTemplate removes the user's template (an operator's reset, after
// which the user enrolls afresh), synced. ErrNotFound if there was none.
func (db *DB) DeleteTemplate(orgIDs, userID string) error {
	org, ok := parseOrgID(orgIDs)
	if !ok || userID == "" || len(userID) > MaxKeyBytes {
		return ErrNotFound
	}
	if err := db.enter(); err != nil {
		return err
	}
	defer db.exit()
	s := acquireScratch()
	defer releaseScratch(s)
	s.key = appendTemplateKey(s.key[:0], org, userID)
	if ok, err := db.has(s.key); err != nil || !ok {
		if err == nil {
			err = ErrNotFound
		}
		return err
	}
	b := db.pdb.NewBatch()
	_ = b.Delete(s.key, nil)
	err := db.commit(b)
	if err == nil {
		db.dropTemplate(s.key)
	}
	return err
}

// decisionIDTime returns the unix ms a decision id was made at: the first
// 48 of its 128 bits (AppendDecisionID), its first ten digits. False for
// an id of another form.
func decisionIDTime[ID string | []byte](id ID) (int64, bool) {
	if len(id) != DecisionIDLen || crockfordValue[id[0]] > 7 { // the first digit holds 3 bits
		return 0, false
	}
	var ms int64
	for i := range DecisionIDLen {
		v := crockfordValue[id[i]]
		if v < 0 {
			return 0, false
		}
		if i < 10 {
			ms = ms<<5 | int64(v)
		}
	}
	return ms, true
}

// crockfordValue maps a digit of crockford to its value, anything else to -1.
var crockfordValue = func() (t [256]int8) {
	for i := range t {
		t[i] = -1
	}
	for v := range len(crockford) {
		t[crockford[v]] = int8(v)
	}
	return t
}()

// idemExpiryOf returns when an idempotency key used for the decision id
// expires; false when it never does (no TTL, or an id that does not carry
// its time).
func idemExpiryOf[ID string | []byte](db *DB, id ID) (int64, bool) {
	ms, ok := decisionIDTime(id)
	if !ok || db.idemTTL <= 0 {
		return 0, false
	}
	return ms + db.idemTTL.Milliseconds(), true
}

// idemTaken says whether the idempotency key (its record's key) is in use:
// stored and not expired. A record that does not parse counts as taken:
// the caller then replays it, which reports the damage.
func (db *DB) idemTaken(key []byte) (bool, error) {
	taken := false
	err := db.get(key, func(v []byte) error {
		_, did, err := parseIdempotencyRec(v)
		at, ok := idemExpiryOf(db, did)
		taken = err != nil || !ok || at > db.nowMs()
		return nil
	})
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	return taken, err
}

// SweepIdempotency deletes the records of up to limit idempotency keys
// past their TTL (limit <= 0: all that are due) and returns how many it
// deleted. Each key's expiry entry goes in the same batch, so a sweep lost
// in a crash (its commits are not synced, as SweepExpired's are not) is
// redone by the next. A key whose entry is due but whose record is not
// expired (the TTL was raised, or the key was used again after expiring)
// gets an entry at its real expiry instead. Records written with no TTL
// have no entry and are kept.
func (db *DB) SweepIdempotency(limit int) (int, error) {
	return db.sweepDue(kindIdemExpiry, limit, db.sweepIdemOne)
}

// sweepIdemOne handles one due expiry entry: it deletes the entry, and the
// key's record if that has expired (reported true).
func (db *DB) sweepIdemOne(s *scratch, entry []byte, now int64) (bool, error) {
	p, ok := decodeKey(entry)
	if !ok || p.kind != kindIdemExpiry {
		return false, errors.Join(db.pdb.Delete(entry, pebble.NoSync), ErrCorrupt)
	}
	st := db.lockBytes(domainIdem, p.org, p.id)
	defer st.Unlock()
	s.key = appendIdempotencyKey(s.key[:0], p.org, p.id)
	b := db.pdb.NewBatch()
	defer func() { _ = b.Close() }()
	_ = b.Delete(entry, nil)
	deleted := false
	var corrupt error
	err := db.get(s.key, func(v []byte) error {
		_, did, err := parseIdempotencyRec(v)
		if err != nil {
			corrupt = fmt.Errorf("%w: idempotency key %s/%q", err, p.org, p.id)
			return nil // kept: Idempotent reports it where it is used
		}
		switch at, ok := idemExpiryOf(db, did); {
		case !ok: // no TTL now: kept for ever, without an entry
		case at <= now:
			_ = b.Delete(s.key, nil)
			deleted = true
		default:
			s.key2 = appendIdemExpiryKey(s.key2[:0], at, p.org, p.id)
			_ = b.Set(s.key2, nil, nil)
		}
		return nil
	})
	if err != nil && !errors.Is(err, ErrNotFound) {
		return false, err
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		return false, err
	}
	return deleted, corrupt
}
