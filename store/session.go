package store

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"io"
	"unsafe"

	"github.com/cockroachdb/pebble/v2"
)

// Session is one collection session of a client SDK: who it is for, what it
// has received, and the fold of the frames scored so far. Fields and frames
// are read separately (Fields or SessionFields, Frames) because most reads
// do not need them. A Session that the request path reuses (SessionInto,
// SessionInPlace) also keeps, unexported, the buffers those reads fill and
// which session they read.
type Session struct {
	OrgID                OrgID
	CSID, UserID, Action string
	CollectTokenHash     [32]byte // SHA-256 of the collect token
	CreatedAt, ExpiresAt int64    // unix ms
	FramesReceived       uint32   // frames accepted (acknowledged) so far
	FramesScored         uint32   // frames folded into Aggregate
	Final                bool     // the SDK said it sent its last event
	Aggregate            []byte   // biometric.Aggregate binary; empty before the first frame is scored

	reuse sessionReuse
}

// sessionReuse is what SessionInto and SessionInPlace leave in a Session
// besides its exported fields. It records which session was read, so that
// SessionFields reads that session's fields whatever the caller does to
// OrgID and CSID afterwards, and it keeps buffers across reads into the
// same Session: ids holds the csid, then (SessionInPlace, unless the
// session was cached) userID and action; agg is the buffer Aggregate is
// read into, and aggView says Aggregate is not it but a view of a cached
// snapshot (SessionInPlace), never to be written; arena holds
// SessionFields' keys and values.
type sessionReuse struct {
	read    bool
	org     OrgID
	csidLen int // ids[:csidLen] is the csid read
	ids     []byte
	agg     []byte
	aggView bool
	arena   []byte

	// Through a Reader (sessioncache.go): cached is the snapshot the
	// session was read from, whose fields SessionFields then returns; or,
	// after a miss, fill says to publish what SessionFields reads, with
	// the record re-encoded in fillRec, if no write happened since fillGen.
	cached  *cachedSession
	fill    bool
	fillGen uint64
	fillRec []byte
}

// CreateSession stores a new session and returns its collect token, shown
// once and stored as SHA-256. ErrExists if the csid was ever used in this
// organization, even if that session expired and was swept. ErrNotFound if
// the organization does not exist.
func (db *DB) CreateSession(org OrgID, csid, userID, action string) (Session, string, error) {
	c, err := db.begin(org, sessionArgs(csid, userID, action))
	if err != nil {
		return Session{}, "", err
	}
	defer c.end()

	c.key = appendOrgKey(c.key[:0], c.org)
	if ok, err := db.has(c.key); err != nil || !ok {
		if err == nil {
			err = ErrNotFound
		}
		return Session{}, "", err
	}

	c.hold(db.lock(domainSession, c.org, csid))
	c.key = appendSessionKey(c.key[:0], c.org, csid)
	if ok, err := db.has(c.key); err != nil || ok {
		if err == nil {
			err = ErrExists
		}
		return Session{}, "", err
	}
	token, hash, err := db.newSecret(CollectTokenPrefix)
	if err != nil {
		return Session{}, "", err
	}
	now := db.nowMs()
	r := sessionRec{
		createdAt: now,
		expiresAt: now + db.ttl.Milliseconds(),
		tokenHash: hash,
		userID:    []byte(userID),
		action:    []byte(action),
	}
	c.val = appendSessionRec(c.val[:0], &r)
	b := db.pdb.NewBatch()
	_ = b.Set(c.key, c.val, nil)
	c.key2 = appendExpiryKey(c.key2[:0], r.expiresAt, c.org, csid)
	_ = b.Set(c.key2, nil, nil)
	if err := db.commit(b); err != nil {
		return Session{}, "", err
	}
	if db.sc != nil {
		db.sc.write(c.key, func(*cachedSession) *cachedSession {
			e := newCachedSession(c.val, nil) // no aggregate yet: the stored form is the cache's
			e.seqKnown = true                 // no frames yet: every seq is new
			return e
		})
	}
	return Session{
		OrgID:            org,
		CSID:             csid,
		UserID:           userID,
		Action:           action,
		CollectTokenHash: hash,
		CreatedAt:        r.createdAt,
		ExpiresAt:        r.expiresAt,
	}, token, nil
}

// sessionArgs is CreateSession's argErr.
func sessionArgs(csid, userID, action string) error {
	switch {
	case csid == "":
		return ErrEmptyID
	case len(csid) > MaxKeyBytes || len(userID) > MaxKeyBytes:
		return ErrKeyTooLong
	case len(action) > MaxKeyBytes:
		return ErrTooLarge
	}
	return nil
}

// Session returns the session. ErrNotFound if it does not exist in this
// organization; ErrExpired once its ExpiresAt has passed, whether or not the
// sweep has removed it yet.
func (db *DB) Session(org OrgID, csid string) (Session, error) {
	var s Session
	err := db.sessionInto(nil, org, csid, &s, readPlain)
	return s, err
}

// SessionInto is Session into a caller's value, reusing the capacity of
// dst.Aggregate, for the request paths that read a session on every call.
// UserID and Action are new strings the caller may keep.
func (db *DB) SessionInto(org OrgID, csid string, dst *Session) error {
	return db.sessionInto(nil, org, csid, dst, readCopy)
}

// SessionInPlace is SessionInto without a copy: UserID and Action are not
// new strings but views of a buffer dst keeps and reuses. They are valid
// until the next read into dst (or until dst is overwritten); a caller that
// keeps either longer must copy it (strings.Clone). Validate reads so
// through a Reader (Reader.SessionInPlace), which allocates nothing once dst
// has grown; without one the record is read with pebble.DB.Get (readNewest),
// which allocates once per table it consults.
//
// Read through a Reader that finds the session cached, UserID, Action and
// Aggregate are views of the cached snapshot, which is never modified: no
// byte is copied. The caller must not write to Aggregate.
func (db *DB) SessionInPlace(org OrgID, csid string, dst *Session) error {
	return db.sessionInto(nil, org, csid, dst, readInPlace)
}

// How sessionInto fills its Session.
const (
	readPlain   = iota // a value of its own: Session
	readCopy           // reusing dst's buffers, strings copied: SessionInto
	readInPlace        // reusing dst's buffers, strings viewed: SessionInPlace
)

// sessionInto reads through rd, or (nil) with readNewest. Through rd it
// reads the session cache first (sessioncache.go).
func (db *DB) sessionInto(rd *Reader, org OrgID, csid string, dst *Session, mode int) error {
	for range maxAggregateRereads {
		if err := db.sessionIntoOnce(rd, org, csid, dst, mode); err != errAggregateMoved {
			return err
		}
	}
	dst.reuse.read, dst.reuse.fill = false, false
	return ErrCorrupt
}

// sessionIntoOnce is one attempt of sessionInto, which may find that a
// write came between its read of the session record and its read of the
// aggregate (errAggregateMoved).
func (db *DB) sessionIntoOnce(rd *Reader, org OrgID, csid string, dst *Session, mode int) error {
	// Until this read succeeds, dst names no session for SessionFields: a
	// caller that ignores an error must not get the previous one's fields.
	dst.reuse.read, dst.reuse.cached, dst.reuse.fill = false, nil, false
	c, err := db.begin(org, lookupID(csid))
	if err != nil {
		return err
	}
	defer c.end()
	var r sessionRec
	var cached *cachedSession
	closer := io.Closer(noClose{})
	if rd != nil && db.sc != nil {
		c.key = appendSessionKey(c.key[:0], c.org, csid)
		if cached = db.sc.get(c.key); cached != nil {
			if err := db.checkSessionRec(cached.rec, &r); err != nil {
				return err
			}
		}
	}
	if cached == nil {
		var err error
		if closer, err = db.readSession(rd, c, csid, &r); err != nil {
			return err
		}
	}
	var userID, action string
	var agg []byte
	own := dst.reuse.agg // the buffer to read Aggregate into
	if own == nil && !dst.reuse.aggView {
		own = dst.Aggregate // the caller's, or the last one read into it
	}
	reuse := sessionReuse{arena: dst.reuse.arena, fillRec: dst.reuse.fillRec, cached: cached, agg: own}
	switch {
	case mode == readPlain:
		userID, action, reuse = string(r.userID), string(r.action), sessionReuse{}
		agg = append([]byte(nil), r.aggregate...)
	case mode == readCopy:
		userID, action = string(r.userID), string(r.action)
		reuse.ids = append(dst.reuse.ids[:0], csid...)
	case cached != nil: // readInPlace: r's slices are views of the snapshot
		reuse.ids = append(dst.reuse.ids[:0], csid...)
		userID, action, agg = viewString(r.userID), viewString(r.action), r.aggregate
		reuse.aggView = true
	default: // readInPlace from Pebble, whose buffer r's slices view
		reuse.ids = append(append(append(dst.reuse.ids[:0], csid...), r.userID...), r.action...)
		userID = viewString(reuse.ids[len(csid) : len(csid)+len(r.userID)])
		action = viewString(reuse.ids[len(csid)+len(r.userID):])
	}
	if mode != readPlain && agg == nil {
		reuse.agg = append(reuse.agg[:0], r.aggregate...)
		agg, reuse.aggView = reuse.agg, false
	}
	if mode != readPlain {
		reuse.read, reuse.org, reuse.csidLen = true, c.org, len(csid)
	}
	if rd != nil && db.sc != nil && cached == nil {
		reuse.fill, reuse.fillGen = true, rd.gen
		reuse.fillRec = appendSessionRecInline(reuse.fillRec[:0], &r) // readAggregate adds an aggregate kept apart
	}
	*dst = Session{
		OrgID:            org,
		CSID:             csid,
		UserID:           userID,
		Action:           action,
		CollectTokenHash: r.tokenHash,
		CreatedAt:        r.createdAt,
		ExpiresAt:        r.expiresAt,
		FramesReceived:   r.received,
		FramesScored:     r.scored,
		Final:            r.final,
		Aggregate:        agg,
		reuse:            reuse,
	}
	if err := closer.Close(); err != nil || !r.aggApart {
		return err
	}
	if err := db.readAggregate(rd, c, csid, dst, mode); err != nil {
		dst.reuse.read, dst.reuse.fill = false, false
		return err
	}
	return nil
}

// viewString is b as a string without a copy. Only for bytes that are not
// written again while the string is in use: see SessionInPlace.
func viewString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// readSession parses a live session's record into r, whose slices alias
// Pebble's buffer until the returned closer is closed. Tombstones and
// sessions past their expiry are ErrExpired. s.key is left holding the
// session key. It reads through rd, or (nil) with readNewest. (A closer
// rather than a callback, as db.get takes: r passed to an unknown function
// would escape to the heap on every read.)
func (db *DB) readSession(rd *Reader, c *call, csid string, r *sessionRec) (io.Closer, error) {
	c.key = appendSessionKey(c.key[:0], c.org, csid)
	now := db.nowMs()
	v, closer, err := db.readRewritten(rd, c.key)
	if err != nil {
		return nil, err
	}
	if err = db.checkSessionRecAt(v, r, now); err != nil {
		_ = closer.Close()
		return nil, err
	}
	return closer, nil
}

// readRewritten reads a record that is rewritten often (a session's, an
// aggregate: by every events post and every scoring pass) through rd, or
// (nil) with readNewest, which stops at the newest version.
func (db *DB) readRewritten(rd *Reader, key []byte) ([]byte, io.Closer, error) {
	if rd == nil {
		return db.readNewest(key)
	}
	return db.readVia(rd, key)
}

// lockSession begins a read-modify-write of the session: it locks the
// session's stripe until c ends, so calls on one session are serialised,
// and reads its record as readSession does without a Reader (the newest
// version, which the write replaces).
func (db *DB) lockSession(c *call, csid string, r *sessionRec) (io.Closer, error) {
	c.hold(db.lock(domainSession, c.org, csid))
	return db.readSession(nil, c, csid, r)
}

// checkSessionRec parses a session record into r and answers ErrExpired for
// a tombstone or a session past its expiry.
func (db *DB) checkSessionRec(v []byte, r *sessionRec) error {
	return db.checkSessionRecAt(v, r, db.nowMs())
}

func (db *DB) checkSessionRecAt(v []byte, r *sessionRec, now int64) error {
	if err := parseSessionRec(v, r); err != nil {
		return err
	}
	if r.tombstone || now >= r.expiresAt {
		return ErrExpired
	}
	return nil
}

// checkSession answers readSession's errors for callers that need only to
// know the session is live.
func (db *DB) checkSession(c *call, csid string) error {
	var r sessionRec
	closer, err := db.readSession(nil, c, csid, &r)
	if err != nil {
		return err
	}
	return closer.Close()
}

// CheckCollectToken reports whether token is the session's collect token.
// The comparison of hashes is constant time, so response timing says nothing
// about how much of a forged token was right.
func (db *DB) CheckCollectToken(s *Session, token []byte) bool {
	if len(token) != CollectTokenLen || s.CollectTokenHash == ([32]byte{}) {
		return false
	}
	h := sha256.Sum256(token)
	return subtle.ConstantTimeCompare(h[:], s.CollectTokenHash[:]) == 1
}

// SaveAggregate records agg as the fold of the session's frames [0, scored).
// The write is not synced, even with Sync durability: an aggregate is derived
// from frames that were synced when they were acknowledged, so one lost in a
// crash only leaves those frames unscored, and the next validate of the
// session queues a job that scores them again (to the same aggregate: the
// fold is deterministic). Any later synced commit (a decision read from
// this aggregate, say) syncs it too, since the log is written in order. Not
// waiting matters: the one scoring worker of a one-core server otherwise
// scored one session per fsync, and under load, with requests running while
// syncs are in flight, ingestion outran it and the queue filled. It only
// moves forward: an aggregate covering fewer frames than the
// stored one is ErrStale (a slow worker lost a race), and one covering frames
// never received is ErrUnreceived. Equal counts replace the stored aggregate,
// which is how a rescore against a new template is saved.
func (db *DB) SaveAggregate(org OrgID, csid string, agg []byte, scored uint32) error {
	c, err := db.begin(org, aggregateArgs(csid, agg))
	if err != nil {
		return err
	}
	defer c.end()

	var r sessionRec
	closer, err := db.lockSession(c, csid, &r)
	if err != nil {
		return err
	}
	switch {
	case scored > r.received:
		err = ErrUnreceived
	case scored < r.scored:
		err = ErrStale
	}
	r.scored = scored
	b := db.pdb.NewBatch()
	putAggregate(b, c, csid, &r, agg)
	// Encoded before Close: r's ids alias Pebble's buffer until then.
	c.val = appendSessionRec(c.val[:0], &r)
	c.zbuf = appendSessionRecInline(c.zbuf[:0], &r)
	if cerr := closer.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = b.Close()
		return err
	}
	_ = b.Set(c.key, c.val, nil)
	err = b.Commit(pebble.NoSync)
	if cerr := b.Close(); err == nil {
		err = cerr
	}
	if err == nil && db.sc != nil {
		db.sc.write(c.key, func(old *cachedSession) *cachedSession {
			if old == nil {
				return nil
			}
			return old.withWrite(c.zbuf, nil)
		})
	}
	return err
}

// aggregateArgs is SaveAggregate's argErr.
func aggregateArgs(csid string, agg []byte) error {
	if err := lookupID(csid); err != nil {
		return err
	}
	if len(agg) > MaxValueBytes {
		return ErrTooLarge
	}
	return nil
}

// sessionRec is a session record or tombstone; its slices alias the value it
// was parsed from.
//
// The aggregate (4 KiB and more for 512-d embeddings: two sums of them) is
// kept in a record of its own (appendAggregateKey), written only when it
// changes, in a key range whose values Pebble keeps in blob files (spanPolicy),
// so that the session record every events post rewrites, and compactions
// rewrite again, is some 120 bytes. aggApart says that record exists. A
// record written before (format 01) holds its aggregate inline; it still
// reads, and the next write of the session moves the aggregate out. The
// session cache keeps the inline form (appendSessionRecInline), so a cached
// read is still one snapshot.
type sessionRec struct {
	tombstone        bool
	final            bool
	aggApart         bool // format 03: the aggregate is in its own record
	createdAt        int64
	expiresAt        int64
	received, scored uint32
	tokenHash        [32]byte
	userID, action   []byte
	aggregate        []byte // inline (format 01, or the cache's form), or as read from its own record
}

// appendSessionRec appends the stored form of r: format 03, without the
// aggregate.
func appendSessionRec(dst []byte, r *sessionRec) []byte {
	return appendSessionHead(dst, r, tagSession)
}

// appendSessionRecInline appends r with its aggregate inline (format 01):
// the form the session cache keeps.
func appendSessionRecInline(dst []byte, r *sessionRec) []byte {
	dst = appendSessionHead(dst, r, tagV1)
	if r.tombstone {
		return dst
	}
	return append(dst, r.aggregate...)
}

// appendSessionHead appends r up to its aggregate, in format tag (or as a
// tombstone).
func appendSessionHead(dst []byte, r *sessionRec, tag byte) []byte {
	if r.tombstone {
		tag = tagTombstone
	}
	var flags byte
	if r.final {
		flags |= flagFinal
	}
	if r.aggApart && tag == tagSession {
		flags |= flagAggregate
	}
	dst = append(dst, tag, flags)
	dst = binary.BigEndian.AppendUint64(dst, uint64(r.createdAt))
	dst = binary.BigEndian.AppendUint64(dst, uint64(r.expiresAt))
	if r.tombstone {
		return dst
	}
	dst = binary.BigEndian.AppendUint32(dst, r.received)
	dst = binary.BigEndian.AppendUint32(dst, r.scored)
	dst = append(dst, r.tokenHash[:]...)
	dst = appendLP(dst, r.userID)
	return appendLP(dst, r.action)
}

func parseSessionRec(v []byte, r *sessionRec) error {
	*r = sessionRec{}
	p := parser{b: v}
	tag := p.byte1()
	flags := p.byte1()
	r.createdAt = p.i64()
	r.expiresAt = p.i64()
	known := flagFinal
	switch tag {
	case tagTombstone:
		r.tombstone = true
	case tagV1, tagSession:
		r.final = flags&flagFinal != 0
		r.received = p.u32()
		r.scored = p.u32()
		copy(r.tokenHash[:], p.take(32))
		r.userID = p.lp()
		r.action = p.lp()
		if tag == tagV1 {
			r.aggregate = p.rest()
		} else {
			known |= flagAggregate
			r.aggApart = flags&flagAggregate != 0
		}
	default:
		return ErrCorrupt
	}
	if !p.done() || flags&^known != 0 || r.scored > r.received {
		return ErrCorrupt
	}
	return nil
}

// putAggregate adds to b the write of agg as the aggregate of the session
// record r, whose scored count it must already hold (its deletion when agg
// is empty), and notes in r where the aggregate now is. c.key2 is used.
//
// The record is be32(scored) aggregate...: a read of the session without
// a Reader reads the session record and this one with two Gets, between
// which a write may commit, and the count tells it that the aggregate it
// read is not the one of the record it read (sessionInto reads again).
func putAggregate(b *pebble.Batch, c *call, csid string, r *sessionRec, agg []byte) {
	c.key2 = appendAggregateKey(c.key2[:0], c.org, csid)
	r.aggregate, r.aggApart = agg, len(agg) > 0
	if len(agg) == 0 {
		_ = b.Delete(c.key2, nil)
		return
	}
	op := b.SetDeferred(len(c.key2), 4+len(agg))
	copy(op.Key, c.key2)
	binary.BigEndian.PutUint32(op.Value, r.scored)
	copy(op.Value[4:], agg)
	_ = op.Finish()
}

// errAggregateMoved: the aggregate record read after a session record is
// not that record's (a write committed between the two reads).
var errAggregateMoved = errors.New("store: the aggregate moved")

// maxAggregateRereads bounds how often a read without a Reader starts
// again because a write of the session came between its two reads. Writes
// of one session take a lock and a commit each, reads a few microseconds,
// so a second read nearly always succeeds; past the bound the two are
// taken as damage.
const maxAggregateRereads = 16

// readAggregate reads the aggregate of the session whose record was just
// read into dst (which said it has one), through rd or (nil) with
// readNewest, into dst's buffer and, when dst is to fill the cache, after
// the inline record in fillRec. An aggregate record that is absent, or is
// of another count than dst's, is errAggregateMoved without a Reader (a
// write came between the reads) and ErrCorrupt through one (a Reader's
// view is one instant).
func (db *DB) readAggregate(rd *Reader, c *call, csid string, dst *Session, mode int) error {
	c.key2 = appendAggregateKey(c.key2[:0], c.org, csid)
	v, closer, err := db.readRewritten(rd, c.key2)
	if errors.Is(err, ErrNotFound) {
		v, closer, err = nil, noClose{}, nil
	}
	if err != nil {
		return err
	}
	defer closer.Close()
	if len(v) < 4 || binary.BigEndian.Uint32(v) != dst.FramesScored {
		if rd == nil {
			return errAggregateMoved
		}
		return ErrCorrupt
	}
	v = v[4:]
	u := &dst.reuse
	if mode == readPlain {
		dst.Aggregate = append([]byte(nil), v...)
		return nil
	}
	u.agg = append(u.agg[:0], v...)
	dst.Aggregate, u.aggView = u.agg, false
	if u.fill {
		u.fillRec = append(u.fillRec, v...)
	}
	return nil
}
