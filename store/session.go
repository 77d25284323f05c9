package store

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"time"
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
	OrgID, CSID, UserID, Action string
	CollectTokenHash            [32]byte // SHA-256 of the collect token
	CreatedAt, ExpiresAt        int64    // unix ms
	FramesReceived              uint32   // frames accepted (acknowledged) so far
	FramesScored                uint32   // frames folded into Aggregate
	Final                       bool     // the SDK said it sent its last event
	Aggregate                   []byte   // biometric.Aggregate binary; empty before the first frame is scored

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
	org     orgID
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

// Pending is the number of received frames not yet folded into Aggregate.
func (s *Session) Pending() uint32 { return s.FramesReceived - s.FramesScored }

// FieldValue is one collected field: its name exactly as the SDK sent it,
// the raw JSON token of its latest value, and the device's timestamp.
type FieldValue struct {
	Key, Value []byte
	TS         int64 // unix ms, device clock
}

// StoredFrame is a frame as Frames yields it, for callers that collect
// frames rather than handle them in the callback. Raw is the caller's own
// encoding (the store compresses it at rest and decompresses it on read);
// Seq is the caller's to fill from that encoding.
type StoredFrame struct {
	Seq   uint64
	Index uint32 // arrival number, 0 for the session's first frame
	Raw   []byte
}

// CreateSession stores a new session and returns its collect token, shown
// once and stored as SHA-256. ErrExists if the csid was ever used in this
// organization, even if that session expired and was swept. ErrNotFound if
// the organization does not exist.
func (db *DB) CreateSession(orgIDs, csid, userID, action string) (Session, string, error) {
	org, ok := parseOrgID(orgIDs)
	if !ok {
		return Session{}, "", ErrNotFound
	}
	if csid == "" {
		return Session{}, "", ErrEmptyID
	}
	if len(csid) > MaxKeyBytes || len(userID) > MaxKeyBytes {
		return Session{}, "", ErrKeyTooLong
	}
	if len(action) > MaxKeyBytes {
		return Session{}, "", ErrTooLarge
	}
	if err := db.enter(); err != nil {
		return Session{}, "", err
	}
	defer db.exit()
	s := acquireScratch()
	defer releaseScratch(s)

	s.key = appendOrgKey(s.key[:0], org)
	if ok, err := db.has(s.key); err != nil || !ok {
		if err == nil {
			err = ErrNotFound
		}
		return Session{}, "", err
	}

	st := db.lock(domainSession, org, csid)
	defer st.Unlock()
	s.key = appendSessionKey(s.key[:0], org, csid)
	if ok, err := db.has(s.key); err != nil || ok {
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
	s.val = appendSessionRec(s.val[:0], &r)
	b := db.pdb.NewBatch()
	_ = b.Set(s.key, s.val, nil)
	s.key2 = appendExpiryKey(s.key2[:0], r.expiresAt, org, csid)
	_ = b.Set(s.key2, nil, nil)
	if err := db.commit(b); err != nil {
		return Session{}, "", err
	}
	if db.sc != nil {
		db.sc.write(s.key, func(*cachedSession) *cachedSession {
			e := newCachedSession(s.val, nil)
			e.seqKnown = true // no frames yet: every seq is new
			return e
		})
	}
	return Session{
		OrgID:            orgIDs,
		CSID:             csid,
		UserID:           userID,
		Action:           action,
		CollectTokenHash: hash,
		CreatedAt:        r.createdAt,
		ExpiresAt:        r.expiresAt,
	}, token, nil
}

// Session returns the session. ErrNotFound if it does not exist in this
// organization; ErrExpired once its ExpiresAt has passed, whether or not the
// sweep has removed it yet.
func (db *DB) Session(orgID, csid string) (Session, error) {
	var s Session
	err := db.sessionInto(nil, orgID, csid, &s, readPlain)
	return s, err
}

// SessionInto is Session into a caller's value, reusing the capacity of
// dst.Aggregate, for the request paths that read a session on every call.
// UserID and Action are new strings the caller may keep.
func (db *DB) SessionInto(orgIDs, csid string, dst *Session) error {
	return db.sessionInto(nil, orgIDs, csid, dst, readCopy)
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
func (db *DB) SessionInPlace(orgIDs, csid string, dst *Session) error {
	return db.sessionInto(nil, orgIDs, csid, dst, readInPlace)
}

// How sessionInto fills its Session.
const (
	readPlain   = iota // a value of its own: Session
	readCopy           // reusing dst's buffers, strings copied: SessionInto
	readInPlace        // reusing dst's buffers, strings viewed: SessionInPlace
)

// sessionInto reads through rd, or (nil) with readNewest. Through rd it
// reads the session cache first (sessioncache.go).
func (db *DB) sessionInto(rd *Reader, orgIDs, csid string, dst *Session, mode int) error {
	// Until this read succeeds, dst names no session for SessionFields: a
	// caller that ignores an error must not get the previous one's fields.
	dst.reuse.read, dst.reuse.cached, dst.reuse.fill = false, nil, false
	org, ok := parseOrgID(orgIDs)
	if !ok || csid == "" || len(csid) > MaxKeyBytes {
		return ErrNotFound
	}
	if err := db.enter(); err != nil {
		return err
	}
	defer db.exit()
	s := acquireScratch()
	defer releaseScratch(s)
	var r sessionRec
	var cached *cachedSession
	closer := io.Closer(noClose{})
	if rd != nil && db.sc != nil {
		s.key = appendSessionKey(s.key[:0], org, csid)
		if cached = db.sc.get(s.key); cached != nil {
			if err := db.checkSessionRec(cached.rec, &r); err != nil {
				return err
			}
		}
	}
	if cached == nil {
		var err error
		if closer, err = db.readSession(rd, s, org, csid, &r); err != nil {
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
		reuse.read, reuse.org, reuse.csidLen = true, org, len(csid)
	}
	if rd != nil && db.sc != nil && cached == nil {
		reuse.fill, reuse.fillGen = true, rd.gen
		reuse.fillRec = appendSessionRec(reuse.fillRec[:0], &r)
	}
	*dst = Session{
		OrgID:            orgIDs,
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
	return closer.Close()
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
func (db *DB) readSession(rd *Reader, s *scratch, org orgID, csid string, r *sessionRec) (io.Closer, error) {
	s.key = appendSessionKey(s.key[:0], org, csid)
	now := db.nowMs()
	var v []byte
	var closer io.Closer
	var err error
	if rd == nil {
		// Sessions are rewritten by every events post and every scoring
		// pass: stop at the newest version.
		v, closer, err = db.readNewest(s.key)
	} else {
		v, closer, err = db.readVia(rd, s.key)
	}
	if err != nil {
		return nil, err
	}
	if err = db.checkSessionRecAt(v, r, now); err != nil {
		_ = closer.Close()
		return nil, err
	}
	return closer, nil
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
func (db *DB) checkSession(s *scratch, org orgID, csid string) error {
	var r sessionRec
	closer, err := db.readSession(nil, s, org, csid, &r)
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

// AppendEvents durably appends fields and frames to a live session in one
// synced batch. A field replaces any earlier value of the same name (exact
// bytes: "Total" and "total" are two fields; matching is the matcher's
// business), later fields in one call replacing earlier ones. Frames are
// stored zstd-compressed under consecutive arrival indexes; firstIndex is the
// first one's (or, with no frames, the index the next frame will get).
// FramesReceived grows by len(frames), and final, once true, stays true.
//
// These frames carry no seq, so every one is stored, and none is known to
// AppendEventsOnce as a re-delivery later: a caller that may re-send frames
// uses AppendEventsOnce.
//
// Calls on one session are serialised, so concurrent posts neither lose
// counts nor share an index.
func (db *DB) AppendEvents(orgIDs, csid string, fields []FieldValue, frames [][]byte, final bool) (firstIndex uint32, err error) {
	firstIndex, _, err = db.appendEvents(orgIDs, csid, fields, frames, nil, final, 0)
	return firstIndex, err
}

// FrameIn is a frame for AppendEventsOnce: Raw is the caller's encoding of
// it (as for AppendEvents) and Seq the seq the client gave it.
type FrameIn struct {
	Seq uint64
	Raw []byte
}

// AppendEventsOnce is AppendEvents for frames a client may deliver more
// than once (a retry after a lost response). A frame whose seq the session
// already holds with byte-identical Raw, or that repeats an earlier frame of
// this call, is a re-delivery: it is skipped, neither stored nor counted in
// FramesReceived. A frame whose seq the session holds with different bytes
// is stored like any other (that is the scorer's evidence, not the store's
// business). stored is how many frames were stored, under arrival indexes
// firstIndex, firstIndex+1, ...; which frames those are, in order, is the
// caller's to tell from the seqs. The knowledge of what was stored is
// updated in the same batch as the frames, under the session's lock, so
// concurrent retries store a frame once.
//
// maxFrames, when not 0, caps the frames a session holds: if the session's
// frames plus those this call would store exceed it, nothing is written and
// the error is ErrTooManyFrames, with firstIndex and stored saying how many
// frames the session would have had (firstIndex + stored).
func (db *DB) AppendEventsOnce(orgIDs, csid string, fields []FieldValue, frames []FrameIn, final bool, maxFrames uint32) (firstIndex uint32, stored int, err error) {
	if frames == nil {
		frames = []FrameIn{} // not nil: nil is AppendEvents' seq-less frames
	}
	return db.appendEvents(orgIDs, csid, fields, nil, frames, final, maxFrames)
}

// appendEvents is AppendEvents (frames in raws, seq-less) and
// AppendEventsOnce (frames in ins, not nil).
func (db *DB) appendEvents(orgIDs, csid string, fields []FieldValue, raws [][]byte, ins []FrameIn, final bool, maxFrames uint32) (firstIndex uint32, stored int, err error) {
	org, ok := parseOrgID(orgIDs)
	if !ok || csid == "" || len(csid) > MaxKeyBytes {
		return 0, 0, ErrNotFound
	}
	for i := range fields {
		switch f := &fields[i]; {
		case len(f.Key) == 0:
			return 0, 0, ErrEmptyID
		case len(f.Key) > MaxKeyBytes:
			return 0, 0, ErrKeyTooLong
		case len(f.Value) > MaxValueBytes:
			return 0, 0, ErrTooLarge
		}
	}
	for _, f := range raws {
		if len(f) > MaxFrameBytes {
			return 0, 0, ErrTooLarge
		}
	}
	for i := range ins {
		if len(ins[i].Raw) > MaxFrameBytes {
			return 0, 0, ErrTooLarge
		}
	}
	if err := db.enter(); err != nil {
		return 0, 0, err
	}
	defer db.exit()
	s := acquireScratch()
	defer releaseScratch(s)

	st := db.lock(domainSession, org, csid)
	defer st.Unlock()
	var r sessionRec
	closer, err := db.readSession(nil, s, org, csid, &r)
	if err != nil {
		return 0, 0, err
	}
	// Keep a copy to re-encode: r aliases Pebble's buffer until Close.
	s.val = appendSessionRec(s.val[:0], &r)
	if err := closer.Close(); err != nil {
		return 0, 0, err
	}
	if err := parseSessionRec(s.val, &r); err != nil {
		return 0, 0, err
	}
	firstIndex = r.received

	// The frames to store: all of raws; those of ins that are not
	// re-deliveries, with their digests for the frame-seq records.
	stored = len(raws)
	var digests [][32]byte
	var skip []bool
	var maxSeq uint64
	if ins != nil {
		// A frame at or above the session's seq floor is new without a
		// lookup (a lookup of an absent key opens every L0 table). The floor
		// is known only while this process created the session and
		// published every write of it since to the cache (no eviction, no
		// snapshot over maxSnapshotBytes): sessioncache.go.
		var floor uint64
		floorKnown := false
		if db.sc != nil {
			floor, floorKnown = db.sc.seqFloorOf(s.key)
		}
		digests, skip = make([][32]byte, len(ins)), make([]bool, len(ins))
		for i := range ins {
			digests[i] = sha256.Sum256(ins[i].Raw)
			if skip[i] = repeatsEarlier(ins, digests, i); skip[i] {
				continue
			}
			if floorKnown && ins[i].Seq >= floor {
				maxSeq = max(maxSeq, ins[i].Seq)
				stored++
				continue
			}
			db.redeliveryLookups.Add(1)
			s.key2 = appendFrameSeqKey(s.key2[:0], org, csid, ins[i].Seq, &digests[i])
			held, err := db.has(s.key2)
			if err != nil {
				return 0, 0, err
			}
			if skip[i] = held; !held {
				stored++ // below a known floor, which need not move; or no floor is known
			}
		}
	}
	if uint64(r.received)+uint64(stored) > math.MaxUint32 {
		return 0, 0, ErrTooLarge
	}
	if maxFrames > 0 && uint64(r.received)+uint64(stored) > uint64(maxFrames) {
		return firstIndex, stored, ErrTooManyFrames
	}
	if len(fields) == 0 && stored == 0 && (!final || r.final) {
		return firstIndex, 0, nil // nothing would change
	}

	b := db.pdb.NewBatch()
	for i := range fields {
		f := &fields[i]
		s.key2 = appendFieldKey(s.key2[:0], org, csid, f.Key)
		s.zbuf = appendFieldRec(s.zbuf[:0], f.TS, f.Value)
		_ = b.Set(s.key2, s.zbuf, nil)
	}
	index := firstIndex
	for _, raw := range raws {
		s.key2 = appendFrameKey(s.key2[:0], org, csid, index)
		s.zbuf = db.zenc.EncodeAll(raw, s.zbuf[:0])
		_ = b.Set(s.key2, s.zbuf, nil)
		index++
	}
	for i := range ins {
		if skip[i] {
			continue
		}
		s.key2 = appendFrameKey(s.key2[:0], org, csid, index)
		s.zbuf = db.zenc.EncodeAll(ins[i].Raw, s.zbuf[:0])
		_ = b.Set(s.key2, s.zbuf, nil)
		s.key2 = appendFrameSeqKey(s.key2[:0], org, csid, ins[i].Seq, &digests[i])
		s.zbuf = binary.BigEndian.AppendUint32(s.zbuf[:0], index)
		_ = b.Set(s.key2, s.zbuf, nil)
		index++
	}
	r.received += uint32(stored)
	r.final = r.final || final
	// r aliases s.val, so encode into zbuf (free again) rather than in place.
	s.zbuf = appendSessionRec(s.zbuf[:0], &r)
	_ = b.Set(s.key, s.zbuf, nil)
	if err := db.commit(b); err != nil {
		if db.sc != nil {
			// Whatever the commit left behind, the snapshot's floor may no
			// longer hold (sessioncache.go).
			db.sc.write(s.key, func(*cachedSession) *cachedSession { return nil })
		}
		return 0, 0, err
	}
	if db.sc != nil {
		db.sc.write(s.key, func(old *cachedSession) *cachedSession {
			if old == nil {
				return nil // no complete snapshot to apply the fields to
			}
			e := old.withWrite(s.zbuf, fields)
			if stored > len(raws) { // frames of ins were stored, with their re-delivery records
				e = e.withFramesFrom(maxSeq)
			}
			return e
		})
	}
	return firstIndex, stored, nil
}

// repeatsEarlier reports whether ins[i] has the seq and digest of an
// earlier frame of ins. Quadratic, but only over frames with equal seqs,
// which a well-behaved client never sends.
func repeatsEarlier(ins []FrameIn, digests [][32]byte, i int) bool {
	for j := range i {
		if ins[j].Seq == ins[i].Seq && digests[j] == digests[i] {
			return true
		}
	}
	return false
}

// EventsHeld reports whether the session already holds everything an
// events call would store: each of fields with the same value and
// timestamp (for a name given more than once, its last occurrence, the one
// that would be stored) and each of frames with the same seq and bytes.
// A client retrying a post whose answer it lost sends exactly that, and
// the caller can then answer as the first post was answered rather than
// refuse it (a final session takes no new events, but a repeat is not
// new). It reads without the session's lock: the caller serialises the
// session's events calls. ErrNotFound and ErrExpired as for the session.
func (db *DB) EventsHeld(orgIDs, csid string, fields []FieldValue, frames []FrameIn) (bool, error) {
	org, ok := parseOrgID(orgIDs)
	if !ok || csid == "" || len(csid) > MaxKeyBytes {
		return false, ErrNotFound
	}
	if err := db.enter(); err != nil {
		return false, err
	}
	defer db.exit()
	s := acquireScratch()
	defer releaseScratch(s)
	if err := db.checkSession(s, org, csid); err != nil {
		return false, err
	}
	for i := range fields {
		f := &fields[i]
		if len(f.Key) == 0 || len(f.Key) > MaxKeyBytes || laterField(fields, i) {
			continue // not storable (the call would fail), or replaced later in the call
		}
		held := false
		s.key2 = appendFieldKey(s.key2[:0], org, csid, f.Key)
		err := db.get(s.key2, func(v []byte) error {
			ts, value, err := parseFieldRec(v)
			held = err == nil && ts == f.TS && bytes.Equal(value, f.Value)
			return err
		})
		if errors.Is(err, ErrNotFound) || (err == nil && !held) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
	}
	for i := range frames {
		digest := sha256.Sum256(frames[i].Raw)
		s.key2 = appendFrameSeqKey(s.key2[:0], org, csid, frames[i].Seq, &digest)
		if held, err := db.has(s.key2); err != nil || !held {
			return false, err
		}
	}
	return true, nil
}

// laterField says whether a field after fields[i] has its name.
func laterField(fields []FieldValue, i int) bool {
	for j := i + 1; j < len(fields); j++ {
		if bytes.Equal(fields[j].Key, fields[i].Key) {
			return true
		}
	}
	return false
}

// Fields appends the session's fields to dst, sorted by name (bytewise),
// and returns it. Keys and values are fresh copies the caller may keep.
func (db *DB) Fields(orgIDs, csid string, dst []FieldValue) ([]FieldValue, error) {
	org, ok := parseOrgID(orgIDs)
	if !ok || csid == "" || len(csid) > MaxKeyBytes {
		return dst, ErrNotFound
	}
	if err := db.enter(); err != nil {
		return dst, err
	}
	defer db.exit()
	s := acquireScratch()
	defer releaseScratch(s)
	if err := db.checkSession(s, org, csid); err != nil {
		return dst, err
	}
	s.key = appendSessionPart(s.key[:0], kindField, org, csid)
	s.key2 = prefixEnd(s.key2[:0], s.key)
	// One arena for every key and value, rather than two allocations per
	// field.
	var a arena
	return db.scanFields(nil, s.key, s.key2, dst, a.copy)
}

// maxFieldArena is the largest field buffer a Session keeps between reads:
// a session with unusually large fields gets a buffer of its own, so that a
// pooled Session does not pin megabytes because of one request.
const maxFieldArena = 256 << 10

// SessionFields appends to dst the fields of the session last read into s
// (by SessionInto or SessionInPlace), sorted by name, and returns it. Keys
// and values are views of a buffer s keeps and reuses: valid until the next
// SessionFields or read into s. With s and dst reused, it allocates
// nothing.
//
// It reads the fields as they are now but does not check again that the
// session is live: the read into s did, an instant before, and skipping a
// second read of the session record is the point. A Session that no read
// filled (a zero value, Session's or CreateSession's), or whose last read
// failed, has no fields to read: ErrNotFound.
func (db *DB) SessionFields(s *Session, dst []FieldValue) ([]FieldValue, error) {
	return db.sessionFields(nil, s, dst)
}

// sessionFields reads through rd, or (nil) an iterator of its own.
func (db *DB) sessionFields(rd *Reader, s *Session, dst []FieldValue) ([]FieldValue, error) {
	u := &s.reuse
	if !u.read {
		return dst, ErrNotFound
	}
	if err := db.enter(); err != nil {
		return dst, err
	}
	defer db.exit()
	if u.cached != nil {
		// The snapshot is never modified: its bytes can be shared.
		return append(dst, u.cached.fields...), nil
	}
	sc := acquireScratch()
	defer releaseScratch(sc)
	sc.key = appendSessionPart(sc.key[:0], kindField, u.org, u.ids[:u.csidLen])
	sc.key2 = prefixEnd(sc.key2[:0], sc.key)
	if cap(u.arena) > maxFieldArena {
		u.arena = nil
	}
	a := u.arena[:0]
	start := len(dst)
	dst, err := db.scanFields(rd, sc.key, sc.key2, dst, func(b []byte) []byte {
		start := len(a)
		a = append(a, b...)
		return a[start:len(a):len(a)]
	})
	u.arena = a
	// Only from the Reader the record came from (same generation): fields
	// from an older view must not be published beside a newer record.
	if err == nil && u.fill && rd != nil && db.sc != nil && rd.gen == u.fillGen {
		u.fill = false
		sc.key = appendSessionPart(sc.key[:0], kindSession, u.org, u.ids[:u.csidLen])
		db.sc.fill(sc.key, u.fillGen, newCachedSession(u.fillRec, dst[start:]))
	}
	return dst, err
}

// scanFields appends the field records in [lower, upper) to dst, keeping
// each name and value with keep (which copies it out of Pebble's buffer).
// It reads through rd, or (nil) an iterator of its own.
func (db *DB) scanFields(rd *Reader, lower, upper []byte, dst []FieldValue, keep func([]byte) []byte) ([]FieldValue, error) {
	if rd != nil {
		err := rd.scan(lower, upper, func(k, v []byte) error {
			ts, val, err := parseFieldRec(v)
			if err != nil {
				return err
			}
			dst = append(dst, FieldValue{Key: keep(k[len(lower):]), Value: keep(val), TS: ts})
			return nil
		})
		return dst, err
	}
	it, err := db.pdb.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return dst, err
	}
	for it.First(); it.Valid(); it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			_ = it.Close()
			return dst, err
		}
		ts, val, err := parseFieldRec(v)
		if err != nil {
			_ = it.Close()
			return dst, err
		}
		name := it.Key()[len(lower):]
		dst = append(dst, FieldValue{Key: keep(name), Value: keep(val), TS: ts})
	}
	return dst, it.Close()
}

// arena hands out copies carved from shared chunks. Each copy is capped at
// its own length, so appending to one cannot overwrite its neighbour.
type arena struct{ buf []byte }

func (a *arena) copy(b []byte) []byte {
	if cap(a.buf)-len(a.buf) < len(b) {
		a.buf = make([]byte, 0, max(len(b), 2*cap(a.buf), 512))
	}
	start := len(a.buf)
	a.buf = append(a.buf, b...)
	return a.buf[start:len(a.buf):len(a.buf)]
}

// Frames calls fn with each of the session's frames from arrival index from
// on, decompressed, in arrival order. raw is valid only during the call. An
// error from fn stops the iteration and is returned.
//
// A stored frame that does not decompress (damage) is passed as raw == nil,
// logged and counted (DamagedFrames), and the iteration goes on: the caller
// must treat it as a frame that can never verify, and can still advance
// past its index.
func (db *DB) Frames(orgIDs, csid string, from uint32, fn func(index uint32, raw []byte) error) error {
	org, ok := parseOrgID(orgIDs)
	if !ok || csid == "" || len(csid) > MaxKeyBytes {
		return ErrNotFound
	}
	if err := db.enter(); err != nil {
		return err
	}
	defer db.exit()
	s := acquireScratch()
	defer releaseScratch(s)
	if err := db.checkSession(s, org, csid); err != nil {
		return err
	}
	s.key = appendFrameKey(s.key[:0], org, csid, from)
	prefix := s.key[:len(s.key)-4]
	s.key2 = prefixEnd(s.key2[:0], prefix)
	it, err := db.pdb.NewIter(&pebble.IterOptions{LowerBound: s.key, UpperBound: s.key2})
	if err != nil {
		return err
	}
	for it.First(); it.Valid(); it.Next() {
		k := it.Key()
		if len(k) != len(prefix)+4 {
			_ = it.Close()
			return ErrCorrupt
		}
		index := binary.BigEndian.Uint32(k[len(prefix):])
		z, err := it.ValueAndErr()
		if err != nil {
			_ = it.Close()
			return err
		}
		raw, err := db.zdec.DecodeAll(z, s.zbuf[:0])
		if err != nil {
			// One damaged frame must not stop the session for good: the
			// callers count it as received but never verified, and go on.
			db.damagedFrames.Add(1)
			db.log.Error("stored frame does not decompress; skipped as unverified",
				"org", orgIDs, "csid", csid, "index", index, "err", err)
			raw = nil
		} else {
			s.zbuf = raw
			if raw == nil {
				raw = noBytes // an empty frame is not a damaged one
			}
		}
		if err := fn(index, raw); err != nil {
			_ = it.Close()
			return err
		}
	}
	return it.Close()
}

// noBytes is the raw Frames passes for an empty frame: nil means damaged.
var noBytes = []byte{}

// DamagedFrames counts the stored frames Frames has met that do not
// decompress, since Open (each time it met them).
func (db *DB) DamagedFrames() uint64 { return db.damagedFrames.Load() }

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
func (db *DB) SaveAggregate(orgIDs, csid string, agg []byte, scored uint32) error {
	org, ok := parseOrgID(orgIDs)
	if !ok || csid == "" || len(csid) > MaxKeyBytes {
		return ErrNotFound
	}
	if len(agg) > MaxValueBytes {
		return ErrTooLarge
	}
	if err := db.enter(); err != nil {
		return err
	}
	defer db.exit()
	s := acquireScratch()
	defer releaseScratch(s)

	st := db.lock(domainSession, org, csid)
	defer st.Unlock()
	var r sessionRec
	closer, err := db.readSession(nil, s, org, csid, &r)
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
	r.aggregate = agg
	s.val = appendSessionRec(s.val[:0], &r)
	if cerr := closer.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	b := db.pdb.NewBatch()
	_ = b.Set(s.key, s.val, nil)
	err = b.Commit(pebble.NoSync)
	if cerr := b.Close(); err == nil {
		err = cerr
	}
	if err == nil && db.sc != nil {
		db.sc.write(s.key, func(old *cachedSession) *cachedSession {
			if old == nil {
				return nil
			}
			return old.withWrite(s.val, nil)
		})
	}
	return err
}

// sweepChunk is how many expiry entries one pass of the sweep reads before
// working on them, so its iterator is short-lived and its memory bounded.
const sweepChunk = 256

// SweepExpired removes the fields, frames (with their frame-seq records)
// and aggregate of up to limit sessions that have expired (limit <= 0: all
// of them), and returns how many it swept. Each swept session's record becomes a tombstone, so its csid
// stays used and it keeps answering ErrExpired.
//
// Sweep commits are not synced, even with Sync durability: a sweep lost in a
// crash is redone by the next one, because the expiry entry goes in the same
// batch as the deletions.
func (db *DB) SweepExpired(limit int) (int, error) {
	return db.sweepDue(kindExpiry, limit, db.sweepOne)
}

// sweepDue runs one on each entry of the expiry kind (kindExpiry,
// kindIdemExpiry) that is due, in key order (oldest first), in chunks, until
// limit of them report true (limit <= 0: until none is due), and returns
// that count. Damage (ErrCorrupt) does not stop it; the first is returned
// after the rest is done.
func (db *DB) sweepDue(kind byte, limit int, one func(s *scratch, entry []byte, now int64) (bool, error)) (int, error) {
	if err := db.enter(); err != nil {
		return 0, err
	}
	defer db.exit()
	s := acquireScratch()
	defer releaseScratch(s)
	now := db.nowMs()
	var upper [9]byte
	upper[0] = kind
	binary.BigEndian.PutUint64(upper[1:], uint64(max(now, -1)+1))

	swept := 0
	var firstErr error
	var due [][]byte
	for limit <= 0 || swept < limit {
		n := sweepChunk
		if limit > 0 {
			n = min(n, limit-swept)
		}
		var err error
		if due, err = db.dueExpiries(due[:0], kind, upper[:], n); err != nil {
			return swept, err
		}
		for _, k := range due {
			ok, err := one(s, k, now)
			if err != nil {
				if !errors.Is(err, ErrCorrupt) {
					return swept, err
				}
				firstErr = cmp.Or(firstErr, err)
			}
			if ok {
				swept++
			}
		}
		if len(due) < n {
			break
		}
	}
	return swept, firstErr
}

// dueExpiries appends to dst copies of up to n expiry keys of the kind
// (kindExpiry, kindIdemExpiry) below upper.
func (db *DB) dueExpiries(dst [][]byte, kind byte, upper []byte, n int) ([][]byte, error) {
	it, err := db.pdb.NewIter(&pebble.IterOptions{LowerBound: []byte{kind}, UpperBound: upper})
	if err != nil {
		return dst, err
	}
	for it.First(); it.Valid() && len(dst) < n; it.Next() {
		dst = append(dst, bytes.Clone(it.Key()))
	}
	return dst, it.Close()
}

// sweepOne sweeps the session of one expiry key and deletes the key. It
// reports whether a live session was turned into a tombstone. A corrupt
// session record is swept too (its frames by range, since their count is
// unreadable) and reported as ErrCorrupt.
func (db *DB) sweepOne(s *scratch, expiryKey []byte, now int64) (bool, error) {
	p, ok := decodeKey(expiryKey)
	if !ok || p.kind != kindExpiry {
		// Undecodable: remove it, or it would be read first by every sweep.
		return false, errors.Join(db.pdb.Delete(expiryKey, pebble.NoSync), ErrCorrupt)
	}
	csid := string(p.id)
	st := db.lock(domainSession, p.org, csid)
	defer st.Unlock()

	s.key = appendSessionKey(s.key[:0], p.org, csid)
	var r sessionRec
	var corrupt error
	err := db.get(s.key, func(v []byte) error {
		if err := parseSessionRec(v, &r); err != nil {
			corrupt = fmt.Errorf("%w: session %s/%q", err, p.org, csid)
			r = sessionRec{expiresAt: p.expires}
			return nil
		}
		r.userID, r.action, r.aggregate = nil, nil, nil // alias Pebble's buffer; not needed
		return nil
	})
	b := db.pdb.NewBatch()
	defer func() { _ = b.Close() }()
	_ = b.Delete(expiryKey, nil)
	switch {
	case errors.Is(err, ErrNotFound) || (err == nil && r.tombstone):
		// Nothing left to sweep; only the entry goes.
		return false, b.Commit(pebble.NoSync)
	case err != nil:
		return false, err
	case corrupt == nil && r.expiresAt > now:
		// Not due: the entry does not match its session (expiry times never
		// change, so this is damage); drop it, the session's own entry stays.
		return false, b.Commit(pebble.NoSync)
	}

	// Point deletes rather than range deletions: a session has few keys,
	// and thousands of small range tombstones would slow every read of the
	// memtable until it is flushed.
	for _, kind := range [...]byte{kindField, kindFrameSeq} {
		s.key2 = appendSessionPart(s.key2[:0], kind, p.org, csid)
		s.val = prefixEnd(s.val[:0], s.key2)
		it, err := db.pdb.NewIter(&pebble.IterOptions{LowerBound: s.key2, UpperBound: s.val})
		if err != nil {
			return false, err
		}
		for it.First(); it.Valid(); it.Next() {
			_ = b.Delete(it.Key(), nil)
		}
		if err := it.Close(); err != nil {
			return false, err
		}
	}
	if corrupt != nil {
		s.key2 = appendSessionPart(s.key2[:0], kindFrame, p.org, csid)
		s.val = prefixEnd(s.val[:0], s.key2)
		_ = b.DeleteRange(s.key2, s.val, nil)
	} else {
		for i := uint32(0); i < r.received; i++ {
			s.key2 = appendFrameKey(s.key2[:0], p.org, csid, i)
			_ = b.Delete(s.key2, nil)
		}
	}
	tomb := sessionRec{tombstone: true, final: r.final, createdAt: r.createdAt, expiresAt: r.expiresAt}
	s.val = appendSessionRec(s.val[:0], &tomb)
	_ = b.Set(s.key, s.val, nil)
	if err := b.Commit(pebble.NoSync); err != nil {
		return false, err
	}
	if db.sc != nil {
		db.sc.write(s.key, func(*cachedSession) *cachedSession { return nil })
	}
	return true, corrupt
}

// RunSweeper sweeps expired sessions and idempotency keys now and then
// every interval until stop is closed or the store is closed. Run it in its
// own goroutine. A pass sweeps everything due, in chunks, checking stop
// between chunks.
func (db *DB) RunSweeper(stop <-chan struct{}, every time.Duration) {
	if every <= 0 {
		every = time.Minute
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if !db.sweepAll(stop, db.SweepExpired, "sessions") ||
			!db.sweepAll(stop, db.SweepIdempotency, "idempotency keys") {
			return
		}
		select {
		case <-stop:
			return
		case <-t.C:
		}
	}
}

// sweepAll runs sweep in chunks until nothing is due, logging what it
// swept (what: the records' name); false when the sweeper should stop.
func (db *DB) sweepAll(stop <-chan struct{}, sweep func(limit int) (int, error), what string) bool {
	total := 0
	defer func() {
		if total > 0 {
			db.log.Info("store: swept expired "+what, "count", total)
		}
	}()
	for {
		n, err := sweep(sweepChunk)
		total += n
		if errors.Is(err, ErrClosed) {
			return false
		}
		if err != nil {
			db.log.Error("store: sweep "+what, "err", err)
			return true
		}
		if n < sweepChunk {
			return true
		}
		select {
		case <-stop:
			return false
		default:
		}
	}
}
