package store

import (
	"sync"
)

// The device cache.
//
// Every call of the authenticator app (its polls, its answers) is
// authenticated by DeviceByToken, which in Pebble is two seeks: the token
// record, then the device record. Under the approvals load that was about
// 6 % of the server's CPU, two lookups per approval (PERF.md, "Approvals").
// The cache keeps each active device DeviceByToken has resolved, keyed by
// the SHA-256 of its token, as the device record stores it: the token
// itself is never kept, here as in Pebble. An entry is an immutable copy
// of the device's organization, id and record; a hit parses it into the
// caller's Device exactly as a read from Pebble would, so the checks
// (not revoked, the hash compared in constant time) are the same.
//
// What a token resolves to changes only by a write of its device: its
// revocation (RevokeDevice), its deletion with its user (DeleteUser), and
// its creation (ActivateDevice, which can only add a token never seen).
// Each of these, after its commit and whatever the commit's outcome, drops
// the token's entry and bumps its shard's gen, under the shard's lock.
// DeviceByToken, on a miss, notes the shard's gen before it reads Pebble
// and fills the entry only if gen has not moved since. So a read made
// before a revocation's commit cannot leave the revoked device cached: the
// revocation's drop either comes after the fill and removes it, or comes
// before and the fill is refused. A read made after the commit finds the
// device revoked and fills nothing. So once RevokeDevice (or DeleteUser)
// has returned, the token's very next call is refused.
//
// Memory is bounded by bytes (Options.DeviceCacheBytes, 16 MiB by
// default): each entry counts its record and id plus deviceEntryOverhead
// for the key, the map slot and the entry header, and a shard past its
// share of the budget evicts entries at random until the new one fits. An
// evicted or never-cached device is read from Pebble, as before. Nothing
// durable depends on the cache.
type deviceCache struct {
	maxShard int // bytes per shard
	shards   [deviceCacheShards]deviceShard
}

const deviceCacheShards = 16

// DefaultDeviceCacheBytes bounds the device cache when
// Options.DeviceCacheBytes is 0: about 58,000 devices of the size the
// approvals bench registers (10,000 of them count 2.9 MB against the
// budget and take 2.4 MB of heap; PERF.md, "Approvals").
const DefaultDeviceCacheBytes = 16 << 20

// deviceEntryOverhead is what an entry costs beyond its bytes: the 32-byte
// key, the map slot with its share of the map's spare capacity, the
// entry's header and the allocation's rounding.
const deviceEntryOverhead = 128

type deviceShard struct {
	mu sync.Mutex
	// gen counts the drops so far, so that a fill from a read that began
	// before one is refused (see above).
	gen   uint64
	m     map[[32]byte]cachedDevice
	bytes int
	_     [24]byte // keep neighbouring shards' locks off one cache line
}

// cachedDevice is one entry: the device's organization, and its id then
// its record in one owned buffer that is never modified once published.
type cachedDevice struct {
	org  OrgID
	idN  int
	body []byte
}

func (e *cachedDevice) id() []byte  { return e.body[:e.idN] }
func (e *cachedDevice) rec() []byte { return e.body[e.idN:] }
func (e *cachedDevice) size() int   { return len(e.body) + deviceEntryOverhead }

func newDeviceCache(maxBytes int) *deviceCache {
	c := &deviceCache{maxShard: max(maxBytes/deviceCacheShards, 1)}
	for i := range c.shards {
		c.shards[i].m = make(map[[32]byte]cachedDevice)
	}
	return c
}

// shard is the hash's shard. The key is a SHA-256 already, so its first
// byte spreads entries as well as any seeded hash would.
func (c *deviceCache) shard(hash *[32]byte) *deviceShard {
	return &c.shards[hash[0]%deviceCacheShards]
}

// get returns the entry of the token hash, if there is one, and the
// shard's gen, which a fill after a miss passes back.
func (c *deviceCache) get(hash *[32]byte) (cachedDevice, bool, uint64) {
	sh := c.shard(hash)
	sh.mu.Lock()
	e, ok := sh.m[*hash]
	gen := sh.gen
	sh.mu.Unlock()
	return e, ok, gen
}

// fill caches the active device of the token hash, read from Pebble after
// get returned gen, unless a drop came in between. id and rec are copied.
func (c *deviceCache) fill(hash *[32]byte, gen uint64, org OrgID, id, rec []byte) {
	if len(id)+len(rec)+deviceEntryOverhead > c.maxShard {
		return // would evict a whole shard for one device
	}
	e := cachedDevice{org: org, idN: len(id), body: make([]byte, 0, len(id)+len(rec))}
	e.body = append(append(e.body, id...), rec...)
	sh := c.shard(hash)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.gen != gen {
		return
	}
	if old, ok := sh.m[*hash]; ok {
		sh.bytes -= old.size()
		delete(sh.m, *hash)
	}
	// Go's map iteration starts at a random place, so the first entries
	// it yields are a random choice to evict.
	for k, old := range sh.m {
		if sh.bytes+e.size() <= c.maxShard {
			break
		}
		sh.bytes -= old.size()
		delete(sh.m, k)
	}
	sh.m[*hash] = e
	sh.bytes += e.size()
}

// drop removes the token hash's entry, after a committed (or failed)
// write of its device, and refuses every fill from a read begun before.
func (c *deviceCache) drop(hash *[32]byte) {
	sh := c.shard(hash)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sh.gen++
	if old, ok := sh.m[*hash]; ok {
		sh.bytes -= old.size()
		delete(sh.m, *hash)
	}
}

// len is the number of entries, and bytes what they count against the
// budget (tests).
func (c *deviceCache) len() (n, bytes int) {
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.Lock()
		n += len(sh.m)
		bytes += sh.bytes
		sh.mu.Unlock()
	}
	return n, bytes
}

// dropDevice drops the token hash's entry, when the cache is on.
func (db *DB) dropDevice(hash *[32]byte) {
	if db.dc != nil {
		db.dc.drop(hash)
	}
}
