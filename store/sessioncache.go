package store

import (
	"bytes"
	"hash/maphash"
	"math"
	"slices"
	"sync"
	"sync/atomic"
)

// The session cache.
//
// Validate reads a session's record, every one of its fields and the user's
// template: an iterator and three Pebble seeks that cost about 14 us of a
// 55 us validate (PERF.md, "Session and template cache"). The cache keeps,
// per session, an immutable snapshot of record and fields (templates: see
// below), so a validate through a Reader finds them in memory:
//
//   - Writers keep it current. Every write of a session (CreateSession,
//     appendEvents, SaveAggregate, the sweep) holds the session's stripe and,
//     after its commit, replaces the snapshot with one that has the write
//     applied (or drops it). So a session created and fed by this process
//     is cached from its first event to its validate, the usual order.
//   - A read that misses (after a restart, or an eviction) fills the cache
//     from the Reader's view, unless a session write may have committed
//     after that view was taken: every write bumps gen, a Reader notes gen
//     before it opens its view, and a fill is refused if gen moved. A
//     refused fill costs nothing but the next read's miss.
//   - A writer applies its write only to a snapshot that is there; a
//     snapshot filled from an older view in the meantime is either refused
//     (gen moved) or, if it went in first, gets the write applied after it,
//     in the order the stripe gives the writers.
//
// Templates live in the same cache, under their own keys: a Reader's read
// of a user's template (or of its absence) fills it, and every template
// write (PutTemplate, DeleteTemplate, an enrolling PutDecision) drops the
// entry after its commit, bumping gen like a session write. So a validate
// whose session and template are cached reads nothing from Pebble.
//
// Snapshots are never modified once published: a reader holds one while
// the writers publish others. Entries are evicted at random once a shard
// passes its share of the byte budget; an evicted session is read from
// Pebble again.
//
// One thing written depends on the cache: a snapshot's seq floor
// (cachedSession) lets appendEvents store a frame without looking up its
// re-delivery record, so a floor must never be known while the session
// holds a record at or above it. That rests on these rules: the floor is
// known only from CreateSession, which runs under the stripe for a csid
// never used (csids are unique per organization forever, and the sweep
// leaves a tombstone); a fill from Pebble never knows it; appendEvents is
// the only writer of re-delivery records, holds the stripe from reading the
// floor to publishing the raised one, and drops the snapshot if its commit
// fails; and an evicted snapshot comes back only by a fill. Otherwise
// nothing durable depends on the cache.
type sessionCache struct {
	gen      atomic.Uint64 // session writes so far (see above)
	seed     maphash.Seed
	maxShard int // bytes per shard
	shards   [sessionCacheShards]cacheShard
}

const sessionCacheShards = 64

// maxSnapshotBytes bounds one session's snapshot. A write republishes the
// whole snapshot, so without a bound a session of many large fields would
// make every events post copy all of them (up to a few MiB under the
// request limits); a larger session is simply read from Pebble.
const maxSnapshotBytes = 64 << 10

// DefaultSessionCacheBytes sizes the session cache when
// Options.SessionCacheBytes is 0: some 30 000 sessions of a few fields.
const DefaultSessionCacheBytes = 32 << 20

type cacheShard struct {
	mu    sync.Mutex
	m     map[string]*cacheSlot
	bytes int
	_     [40]byte // keep neighbouring shards' locks off one cache line
}

// cacheSlot holds a key's current snapshot, so that replacing it (every
// write of a cached session) neither allocates the key again nor rehashes.
type cacheSlot struct{ e *cachedSession }

// cachedSession is one published snapshot: the encoded session record and
// the session's fields in key order, all in one owned buffer. A user's
// template is kept the same way, in rec, or absent (the user has none).
type cachedSession struct {
	rec    []byte
	fields []FieldValue
	absent bool
	size   int
	// seqFloor, when seqKnown, is one more than the highest frame seq the
	// session holds a re-delivery record for (0: none). It is known only
	// when this process created the session and published every write of
	// it since (a snapshot filled from Pebble does not know it), so a frame
	// at or above it cannot be a re-delivery and appendEvents skips the
	// lookup that would say so (PERF.md, "New frames skip the re-delivery
	// lookup").
	seqFloor uint64
	seqKnown bool
}

// newCachedTemplate is the entry of a template (absent: the user has none).
func newCachedTemplate(tmpl []byte, absent bool) *cachedSession {
	if absent {
		tmpl = nil
	}
	e := newCachedSession(tmpl, nil)
	e.absent = absent
	return e
}

func newSessionCache(maxBytes int) *sessionCache {
	c := &sessionCache{seed: maphash.MakeSeed(), maxShard: max(maxBytes/sessionCacheShards, 1)}
	for i := range c.shards {
		c.shards[i].m = make(map[string]*cacheSlot)
	}
	return c
}

func (c *sessionCache) shard(key []byte) *cacheShard {
	return &c.shards[maphash.Bytes(c.seed, key)%sessionCacheShards]
}

// get returns the snapshot of the session key, or nil.
func (c *sessionCache) get(key []byte) *cachedSession {
	sh := c.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if slot := sh.m[string(key)]; slot != nil {
		return slot.e
	}
	return nil
}

// fill publishes e for key if no session write happened since gen.
func (c *sessionCache) fill(key []byte, gen uint64, e *cachedSession) {
	sh := c.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if c.gen.Load() != gen {
		return
	}
	sh.put(key, e, c.maxShard)
}

// write records a committed write of the session key: update maps the
// current snapshot (nil if none) to the next one (nil: drop it). The caller
// holds the session's stripe, so writes of one session come in commit order.
func (c *sessionCache) write(key []byte, update func(old *cachedSession) *cachedSession) {
	sh := c.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	c.gen.Add(1)
	var old *cachedSession
	if slot := sh.m[string(key)]; slot != nil {
		old = slot.e
	}
	next := update(old)
	switch {
	case next != nil:
		sh.put(key, next, c.maxShard)
	case old != nil:
		delete(sh.m, string(key))
		sh.bytes -= old.size
	}
}

// put inserts or replaces, then evicts (at random: map order) down to max.
func (sh *cacheShard) put(key []byte, e *cachedSession, max int) {
	slot := sh.m[string(key)]
	if slot != nil {
		sh.bytes -= slot.e.size
	}
	if e.size > maxSnapshotBytes {
		if slot != nil {
			delete(sh.m, string(key))
		}
		return
	}
	if slot == nil {
		slot = &cacheSlot{}
		sh.m[string(key)] = slot
	}
	slot.e = e
	sh.bytes += e.size
	for k, v := range sh.m {
		if sh.bytes <= max {
			break
		}
		if v == slot {
			continue
		}
		delete(sh.m, k)
		sh.bytes -= v.e.size
	}
}

// newCachedSession builds a snapshot from a record and fields in key order,
// copying them into one buffer.
func newCachedSession(rec []byte, fields []FieldValue) *cachedSession {
	return ownSnapshot(rec, slices.Clone(fields))
}

// ownSnapshot is newCachedSession for a fields slice the snapshot may keep:
// the names and values are copied into one buffer and fields is pointed at
// the copies, so a snapshot costs three allocations (buffer, fields, entry).
func ownSnapshot(rec []byte, fields []FieldValue) *cachedSession {
	n := len(rec)
	for i := range fields {
		n += len(fields[i].Key) + len(fields[i].Value)
	}
	buf := make([]byte, 0, n)
	keep := func(b []byte) []byte {
		start := len(buf)
		buf = append(buf, b...)
		return buf[start:len(buf):len(buf)]
	}
	e := &cachedSession{rec: keep(rec), fields: fields}
	for i := range fields {
		fields[i] = FieldValue{Key: keep(fields[i].Key), Value: keep(fields[i].Value), TS: fields[i].TS}
	}
	e.size = n + 48*len(fields) + 160 // slices, map entry and key, roughly
	return e
}

// withWrite is old with rec replaced and fields set (a later field of one
// name replacing an earlier one, as appendEvents stores them). It copies the
// whole snapshot, record included (an aggregate of a 512-d session is about
// 4 KiB): snapshots are never modified once readers may hold them.
func (old *cachedSession) withWrite(rec []byte, fields []FieldValue) *cachedSession {
	n := old.size + len(rec)
	for i := range fields {
		n += len(fields[i].Key) + len(fields[i].Value)
	}
	if n > maxSnapshotBytes {
		return nil // too big to republish on every write: read from Pebble
	}
	merged := make([]FieldValue, len(old.fields), len(old.fields)+len(fields))
	copy(merged, old.fields)
	for i := range fields {
		f := fields[i]
		j, found := slices.BinarySearchFunc(merged, f.Key, func(a FieldValue, k []byte) int { return bytes.Compare(a.Key, k) })
		if found {
			merged[j] = f
		} else {
			merged = slices.Insert(merged, j, f)
		}
	}
	e := ownSnapshot(rec, merged)
	e.seqFloor, e.seqKnown = old.seqFloor, old.seqKnown
	return e
}

// withFramesFrom is e after frames up to seq maxSeq got re-delivery
// records: the floor rises past maxSeq, or is no longer known if it cannot.
// It sets e's floor in place, so e must be a snapshot not yet published
// (withWrite's result).
func (e *cachedSession) withFramesFrom(maxSeq uint64) *cachedSession {
	switch {
	case e == nil || !e.seqKnown:
	case maxSeq == math.MaxUint64:
		e.seqKnown = false // no floor above it to keep
	case maxSeq >= e.seqFloor:
		e.seqFloor = maxSeq + 1
	}
	return e
}

// seqFloorOf returns the floor of the cached snapshot of key (see
// cachedSession), and whether it is known.
func (c *sessionCache) seqFloorOf(key []byte) (uint64, bool) {
	if e := c.get(key); e != nil && !e.absent {
		return e.seqFloor, e.seqKnown
	}
	return 0, false
}
