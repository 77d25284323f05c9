package store

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"math"
	"slices"
	"strconv"

	"github.com/cockroachdb/pebble/v2"
)

// AppendEvents durably appends fields and frames to a live session in one
// synced batch. A field replaces any earlier value of the same name (exact
// bytes: "Total" and "total" are two fields; matching is the matcher's
// business), later fields in one call replacing earlier ones. Frames are
// stored as given (appendStoredFrame) under consecutive arrival indexes; firstIndex is the
// first one's (or, with no frames, the index the next frame will get).
// FramesReceived grows by len(frames), and final, once true, stays true.
//
// These frames carry no seq, so every one is stored, and none is known to
// AppendEventsOnce as a re-delivery later: a caller that may re-send frames
// uses AppendEventsOnce.
//
// Calls on one session are serialised, so concurrent posts neither lose
// counts nor share an index.
func (db *DB) AppendEvents(org OrgID, csid string, fields []FieldValue, frames [][]byte, final bool) (firstIndex uint32, err error) {
	firstIndex, _, _, err = db.appendEvents(org, csid, fields, frames, nil, final, 0, 0, nil)
	return firstIndex, err
}

// FrameIn is a frame for AppendEventsOnce: Raw is the caller's encoding of
// it (as for AppendEvents) and Seq the seq the client gave it.
type FrameIn struct {
	Seq uint64
	Raw []byte
}

// AppendEventsOnce is AppendEvents for frames a client may deliver more
// than once, with the checks an events request needs made under the
// session's lock, so that concurrent requests cannot together get past
// them (a retry after a lost response). A frame whose seq the session
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
// A session marked final takes nothing new: a call it holds in full (as
// EventsHeld tells) is a client retrying a post whose answer it lost, and
// stores nothing with no error; any other is ErrFinal.
//
// maxFields, when not 0, caps the distinct field names a session holds:
// if the names of fields that are neither stored nor repeated earlier in
// the call would take the session past it, nothing is written and the
// error is a *LimitError for ErrFieldLimit. maxFrames, when not 0, caps
// the frames a session holds: if the session's frames plus those this
// call would store exceed it, nothing is written and the error is a
// *LimitError for ErrFrameLimit, with firstIndex and stored also saying
// how many frames the session would have had (firstIndex + stored).
func (db *DB) AppendEventsOnce(org OrgID, csid string, fields []FieldValue, frames []FrameIn, final bool, maxFields int, maxFrames uint32) (firstIndex uint32, stored int, err error) {
	if frames == nil {
		frames = []FrameIn{} // not nil: nil is AppendEvents' seq-less frames
	}
	firstIndex, stored, _, err = db.appendEvents(org, csid, fields, nil, frames, final, maxFields, maxFrames, nil)
	return firstIndex, stored, err
}

// Fold is an aggregate an events call stores with its frames when it
// covers exactly what the session then holds: Aggregate is the fold of
// the session's first From frames followed by every frame of the call, in
// order, made by the caller from the bytes it is storing.
type Fold struct {
	Aggregate []byte
	From      uint32
}

// AppendEventsScored is AppendEventsOnce that also stores fold as the
// session's aggregate, in the same synced batch as the frames, when the
// session held exactly fold.From frames, all of them scored, and every
// frame of the call is stored (none a re-delivery); scored says it was.
// Otherwise the frames are stored as AppendEventsOnce stores them, the
// aggregate is not, and scoring them is the caller's to arrange. The check
// is made under the session's lock, so no concurrent call can store frames
// the aggregate does not cover, and an aggregate saved later for fewer
// frames (a slow worker) is ErrStale, as SaveAggregate says.
//
// One write of the session record per events post, not two (the frames'
// batch, then SaveAggregate): the aggregate is most of the record's bytes.
func (db *DB) AppendEventsScored(org OrgID, csid string, fields []FieldValue, frames []FrameIn, final bool, maxFields int, maxFrames uint32, fold *Fold) (firstIndex uint32, stored int, scored bool, err error) {
	if frames == nil {
		frames = []FrameIn{}
	}
	if len(fold.Aggregate) > MaxValueBytes {
		return 0, 0, false, ErrTooLarge
	}
	return db.appendEvents(org, csid, fields, nil, frames, final, maxFields, maxFrames, fold)
}

// LimitError is an events call refused because it would take a session
// past a cap its caller set. It carries the counts, so that the caller can
// say in its answer what the session would have held.
type LimitError struct {
	Limit error  // ErrFieldLimit or ErrFrameLimit; errors.Is matches it
	Would uint64 // what the session would have held (fields: at least, as counting stops past the cap)
	Max   uint64 // the cap
}

func (e *LimitError) Error() string {
	return e.Limit.Error() + ": the session would hold " + strconv.FormatUint(e.Would, 10) +
		", at most " + strconv.FormatUint(e.Max, 10)
}

func (e *LimitError) Unwrap() error { return e.Limit }

// appendEvents is AppendEvents (frames in raws, seq-less),
// AppendEventsOnce (frames in ins, not nil) and AppendEventsScored (with
// fold).
func (db *DB) appendEvents(org OrgID, csid string, fields []FieldValue, raws [][]byte, ins []FrameIn, final bool, maxFields int, maxFrames uint32, fold *Fold) (firstIndex uint32, stored int, scored bool, err error) {
	c, err := db.begin(org, eventsArgs(csid, fields, raws, ins))
	if err != nil {
		return 0, 0, false, err
	}
	defer c.end()

	var r sessionRec
	closer, err := db.lockSession(c, csid, &r)
	if err != nil {
		return 0, 0, false, err
	}
	// Keep a copy to re-encode: r aliases Pebble's buffer until Close. A
	// record of format 01 is copied as such, with its aggregate.
	if r.aggregate != nil {
		c.val = appendSessionRecInline(c.val[:0], &r)
	} else {
		c.val = appendSessionRec(c.val[:0], &r)
	}
	if err := closer.Close(); err != nil {
		return 0, 0, false, err
	}
	if err := parseSessionRec(c.val, &r); err != nil {
		return 0, 0, false, err
	}
	firstIndex = r.received
	if ins != nil && r.final {
		// Read under the lock: nothing can be added beside the check.
		switch held, err := db.eventsHeld(c, csid, fields, ins); {
		case err != nil:
			return 0, 0, false, err
		case !held:
			return firstIndex, 0, false, ErrFinal
		}
		return firstIndex, 0, false, nil
	}
	if maxFields > 0 && len(fields) > 0 {
		if err := db.checkFieldCap(c, csid, fields, maxFields); err != nil {
			return 0, 0, false, err
		}
	}

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
			floor, floorKnown = db.sc.seqFloorOf(c.key)
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
			c.key2 = appendFrameSeqKey(c.key2[:0], c.org, csid, ins[i].Seq, &digests[i])
			held, err := db.has(c.key2)
			if err != nil {
				return 0, 0, false, err
			}
			if skip[i] = held; !held {
				stored++ // below a known floor, which need not move; or no floor is known
			}
		}
	}
	if uint64(r.received)+uint64(stored) > math.MaxUint32 {
		return 0, 0, false, ErrTooLarge
	}
	if maxFrames > 0 && uint64(r.received)+uint64(stored) > uint64(maxFrames) {
		return firstIndex, stored, false, &LimitError{Limit: ErrFrameLimit, Would: uint64(r.received) + uint64(stored), Max: uint64(maxFrames)}
	}
	if len(fields) == 0 && stored == 0 && (!final || r.final) {
		return firstIndex, 0, false, nil // nothing would change
	}

	b := db.pdb.NewBatch()
	for i := range fields {
		f := &fields[i]
		c.key2 = appendFieldKey(c.key2[:0], c.org, csid, f.Key)
		c.zbuf = appendFieldRec(c.zbuf[:0], f.TS, f.Value)
		_ = b.Set(c.key2, c.zbuf, nil)
	}
	index := firstIndex
	for _, raw := range raws {
		c.key2 = appendFrameKey(c.key2[:0], c.org, csid, index)
		c.zbuf = appendStoredFrame(c.zbuf[:0], raw)
		_ = b.Set(c.key2, c.zbuf, nil)
		index++
	}
	for i := range ins {
		if skip[i] {
			continue
		}
		c.key2 = appendFrameKey(c.key2[:0], c.org, csid, index)
		c.zbuf = appendStoredFrame(c.zbuf[:0], ins[i].Raw)
		_ = b.Set(c.key2, c.zbuf, nil)
		c.key2 = appendFrameSeqKey(c.key2[:0], c.org, csid, ins[i].Seq, &digests[i])
		c.zbuf = binary.BigEndian.AppendUint32(c.zbuf[:0], index)
		_ = b.Set(c.key2, c.zbuf, nil)
		index++
	}
	// The fold covers what the session will hold only if it covered all
	// the session held and the call stores every frame it was made from.
	scored = fold != nil && stored > 0 && stored == len(ins) && len(raws) == 0 &&
		r.received == fold.From && r.scored == fold.From
	r.received += uint32(stored)
	r.final = r.final || final
	inline := r.aggregate != nil // a format 01 record: its aggregate moves to its own record
	switch {
	case scored:
		r.scored = r.received
		putAggregate(b, c, csid, &r, fold.Aggregate)
	case inline:
		putAggregate(b, c, csid, &r, r.aggregate)
	}
	// r aliases c.val, so encode into zbuf (free again) rather than in place.
	c.zbuf = appendSessionRec(c.zbuf[:0], &r)
	_ = b.Set(c.key, c.zbuf, nil)
	// The cache's form of the record, its aggregate inline: the batch has
	// copied the stored form. An aggregate the call did not write is the
	// cached snapshot's (below).
	c.zbuf = appendSessionRecInline(c.zbuf[:0], &r)
	if err := db.commit(b); err != nil {
		if db.sc != nil {
			// Whatever the commit left behind, the snapshot's floor may no
			// longer hold (sessioncache.go).
			db.sc.write(c.key, func(*cachedSession) *cachedSession { return nil })
		}
		return 0, 0, false, err
	}
	if db.sc != nil {
		db.sc.write(c.key, func(old *cachedSession) *cachedSession {
			if old == nil {
				return nil // no complete snapshot to apply the fields to
			}
			if r.aggApart && !scored && !inline {
				var o sessionRec
				if parseSessionRec(old.rec, &o) != nil || o.scored != r.scored {
					return nil
				}
				r.aggregate = o.aggregate // views of old.rec, never modified; withWrite copies them
				c.zbuf = appendSessionRecInline(c.zbuf[:0], &r)
			}
			e := old.withWrite(c.zbuf, fields)
			if stored > len(raws) { // frames of ins were stored, with their re-delivery records
				e = e.withFramesFrom(maxSeq)
			}
			return e
		})
	}
	return firstIndex, stored, scored, nil
}

// eventsArgs is appendEvents' argErr.
func eventsArgs(csid string, fields []FieldValue, raws [][]byte, ins []FrameIn) error {
	if err := lookupID(csid); err != nil {
		return err
	}
	for i := range fields {
		switch f := &fields[i]; {
		case len(f.Key) == 0:
			return ErrEmptyID
		case len(f.Key) > MaxKeyBytes:
			return ErrKeyTooLong
		case len(f.Value) > MaxValueBytes:
			return ErrTooLarge
		}
	}
	for _, f := range raws {
		if len(f) > MaxFrameBytes {
			return ErrTooLarge
		}
	}
	for i := range ins {
		if len(ins[i].Raw) > MaxFrameBytes {
			return ErrTooLarge
		}
	}
	return nil
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
// new). It reads without the session's lock, so its answer may be out of
// date unless the session is final (AppendEventsOnce adds nothing to a
// final session), and AppendEventsOnce asks again under the lock.
// ErrNotFound and ErrExpired as for the session.
func (db *DB) EventsHeld(org OrgID, csid string, fields []FieldValue, frames []FrameIn) (bool, error) {
	c, err := db.begin(org, lookupID(csid))
	if err != nil {
		return false, err
	}
	defer c.end()
	if err := db.checkSession(c, csid); err != nil {
		return false, err
	}
	return db.eventsHeld(c, csid, fields, frames)
}

// eventsHeld is EventsHeld for a call that has read the session. It
// encodes keys into c.key2 only, so c.key, the session's key, survives.
func (db *DB) eventsHeld(c *call, csid string, fields []FieldValue, frames []FrameIn) (bool, error) {
	for i := range fields {
		f := &fields[i]
		if len(f.Key) == 0 || len(f.Key) > MaxKeyBytes || laterField(fields, i) {
			continue // not storable (the call would fail), or replaced later in the call
		}
		held := false
		c.key2 = appendFieldKey(c.key2[:0], c.org, csid, f.Key)
		err := db.get(c.key2, func(v []byte) error {
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
		c.key2 = appendFrameSeqKey(c.key2[:0], c.org, csid, frames[i].Seq, &digest)
		if held, err := db.has(c.key2); err != nil || !held {
			return false, err
		}
	}
	return true, nil
}

// checkFieldCap answers a *LimitError for ErrFieldLimit when storing
// fields would give the session more than maxFields distinct names: those
// stored, and those of fields that are not stored and not repeated earlier
// in the call (names compare as keys do: exact bytes). The session's
// stored names are only counted; they are looked up one by one only when
// the count plus the call's fields exceeds the cap, which a session well
// under its cap never pays.
func (db *DB) checkFieldCap(c *call, csid string, fields []FieldValue, maxFields int) error {
	c.key2 = appendSessionPart(c.key2[:0], kindField, c.org, csid)
	c.zbuf = prefixEnd(c.zbuf[:0], c.key2)
	it, err := db.pdb.NewIter(&pebble.IterOptions{LowerBound: c.key2, UpperBound: c.zbuf})
	if err != nil {
		return err
	}
	n := 0
	for it.First(); it.Valid(); it.Next() {
		n++
	}
	if err := it.Close(); err != nil {
		return err
	}
	if n+len(fields) <= maxFields {
		return nil
	}
	for i := range fields {
		key := fields[i].Key
		if slices.ContainsFunc(fields[:i], func(f FieldValue) bool { return bytes.Equal(f.Key, key) }) {
			continue
		}
		c.key2 = appendFieldKey(c.key2[:0], c.org, csid, key)
		switch stored, err := db.has(c.key2); {
		case err != nil:
			return err
		case stored:
			continue
		}
		if n++; n > maxFields {
			return &LimitError{Limit: ErrFieldLimit, Would: uint64(n), Max: uint64(maxFields)}
		}
	}
	return nil
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
